/* tmpdir.h -- one temporary folder per C unit test process: made on first use
 * under $TMPDIR (else /tmp) with a unique name, and removed with everything in
 * it when the process exits, whether its checks passed or not (atexit; also on
 * abort and the usual fatal signals). */
#ifndef FOLDLINE_TEST_TMPDIR_H
#define FOLDLINE_TEST_TMPDIR_H

#include <ftw.h> /* nftw: the tests build with _GNU_SOURCE, as foldline_core does */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char test_tmpdir_path[512];

static int test_tmpdir_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void test_tmpdir_cleanup(void)
{
    if (test_tmpdir_path[0])
        nftw(test_tmpdir_path, test_tmpdir_rm, 16, FTW_DEPTH | FTW_PHYS);
    test_tmpdir_path[0] = '\0';
}

static void test_tmpdir_on_signal(int sig)
{
    test_tmpdir_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The process's temporary folder (made on the first call; exits on failure). */
static inline const char *test_tmpdir(void)
{
    if (!test_tmpdir_path[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(test_tmpdir_path, sizeof test_tmpdir_path, "%s/foldline-unit-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(test_tmpdir_path)) {
            perror(test_tmpdir_path);
            exit(1);
        }
        atexit(test_tmpdir_cleanup);
        int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGINT, SIGTERM};
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
            signal(sigs[i], test_tmpdir_on_signal);
    }
    return test_tmpdir_path;
}

/* test_tmpdir()/name into buf (n bytes); returns buf. */
static inline char *test_tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
    return buf;
}

#endif
