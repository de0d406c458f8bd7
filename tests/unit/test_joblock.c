/* test_joblock.c -- trainer/joblock.c with real processes on a real
 * directory: a held lock is refused naming its holder, a lock of another
 * host goes stale by its heartbeat only, a holder taken over learns it, and
 * many processes racing for locks whose holders die never hold one at once
 * (an O_EXCL marker file each holder creates catches a second holder). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trainer/joblock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char dir[256];

static void path_in(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Names in the directory that start with "lock". */
static int count_lock_names(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += !strncmp(e->d_name, "lock", 4);
    if (d)
        closedir(d);
    return n;
}

static void test_held_lock_is_refused_naming_the_holder_and_free_after_release(void)
{
    fl_joblock *l = NULL, *l2 = NULL;
    fl_joblock_outcome o;
    fl_error err;
    CHECK(fl_joblock_open(dir, 60, &l, &o, &err) == FL_OK && l && !o.held && !o.took_over);
    CHECK(count_lock_names() == 2); /* lock and the holder's own copy */
    pid_t child = fork();
    if (child == 0) { /* another process of this host */
        fl_joblock *c = NULL;
        char want[64];
        snprintf(want, sizeof want, " pid %ld since ", (long)getppid());
        int ok = fl_joblock_open(dir, 60, &c, &o, &err) == FL_OK && !c && o.held && strstr(o.who, want) &&
                 strstr(o.who, "(heartbeat 0 s ago)");
        _exit(ok ? 0 : 1);
    }
    int st;
    waitpid(child, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(count_lock_names() == 2); /* the refused process wrote nothing */
    CHECK(fl_joblock_release(l, &err) == FL_OK);
    CHECK(count_lock_names() == 0);
    CHECK(fl_joblock_open(dir, 60, &l2, &o, &err) == FL_OK && l2 && !o.took_over);
    CHECK(fl_joblock_release(l2, &err) == FL_OK);
}

/* A lock as foldline writes it, of host "otherhost", its heartbeat age_s old. */
static void write_foreign_lock(double age_s)
{
    char own[512], lock[512];
    path_in(own, sizeof own, "lock.otherhost.4711.0000abcd");
    path_in(lock, sizeof lock, "lock");
    FILE *f = fopen(own, "w");
    fprintf(f,
            "file lock.otherhost.4711.0000abcd\nhost otherhost\nboot_id x\npid_ns pid:[1]\npid %d\nstart 1\n"
            "since 1700000000\n",
            (int)getpid()); /* a pid alive here: it must not matter for another host */
    fclose(f);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= (time_t)age_s;
    t[1] = t[0];
    utimensat(AT_FDCWD, own, t, 0);
    link(own, lock);
}

static void test_another_hosts_lock_is_stale_by_its_heartbeat_only(void)
{
    fl_joblock *l = NULL;
    fl_joblock_outcome o;
    fl_error err;
    write_foreign_lock(3);
    CHECK(fl_joblock_open(dir, 5, &l, &o, &err) == FL_OK && !l && o.held);
    CHECK(strstr(o.who, "host otherhost pid") && strstr(o.who, "(heartbeat 3 s ago)"));
    CHECK(fl_joblock_inspect(dir, 5, &o, &err) == FL_OK && o.held);
    char own[512];
    path_in(own, sizeof own, "lock.otherhost.4711.0000abcd");
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= 9;
    t[1] = t[0];
    utimensat(AT_FDCWD, own, t, 0);
    CHECK(fl_joblock_inspect(dir, 5, &o, &err) == FL_OK && !o.held);
    CHECK(fl_joblock_open(dir, 5, &l, &o, &err) == FL_OK && l && o.took_over);
    CHECK(strstr(o.who, "(heartbeat 9 s old, older than dist.lock_timeout_s = 5 s)") != NULL);
    CHECK(access(own, F_OK) != 0); /* the stale holder's copy is gone with it */
    CHECK(fl_joblock_release(l, &err) == FL_OK);
    CHECK(count_lock_names() == 0);
}

static void test_a_holder_taken_over_learns_it_and_leaves_the_new_lock_alone(void)
{
    fl_joblock *l = NULL;
    fl_joblock_outcome o;
    fl_error err;
    CHECK(fl_joblock_open(dir, 60, &l, &o, &err) == FL_OK && l);
    /* What a taker does (joblock.c): claim the holder's own copy, remove the lock, link its own. */
    char lock[512], own[600], claimed[600], cmd[1024];
    path_in(lock, sizeof lock, "lock");
    snprintf(cmd, sizeof cmd, "sed -n 's/^file //p' %s", lock);
    FILE *p = popen(cmd, "r");
    char name[256] = "";
    CHECK(fgets(name, sizeof name, p) != NULL);
    pclose(p);
    name[strcspn(name, "\n")] = 0;
    path_in(own, sizeof own, name);
    path_in(claimed, sizeof claimed, "claimed");
    CHECK(rename(own, claimed) == 0 && unlink(lock) == 0 && unlink(claimed) == 0);
    write_foreign_lock(0); /* the new holder's */
    CHECK(!fl_joblock_lost(l));
    CHECK(fl_joblock_refresh(l, &err) == FL_OK && fl_joblock_lost(l));
    CHECK(fl_joblock_release(l, &err) != FL_OK && strstr(err.msg, "another trainer took this job's lock over"));
    CHECK(access(lock, F_OK) == 0); /* the new holder's lock stays */
    system("rm -f \"$LOCKDIR\"/lock*");
}

/* N processes, each R times: a child that takes the lock, holds it a moment
 * (an O_EXCL marker proves it alone), then releases it or dies holding it. */
static void test_racing_takers_of_dying_holders_never_hold_at_once(void)
{
    enum { N = 6, R = 25 };
    char marker[512];
    path_in(marker, sizeof marker, "holder");
    pid_t kids[N];
    int tally[2];
    CHECK(pipe(tally) == 0);
    for (int i = 0; i < N; i++) {
        if ((kids[i] = fork()) == 0) {
            int bad = 0, got = 0, took = 0;
            for (int r = 0; r < R; r++) {
                pid_t g = fork();
                if (g == 0) {
                    fl_joblock *l = NULL;
                    fl_joblock_outcome o;
                    fl_error err;
                    do { /* until it gets the lock: every racer waits on it, all race when its holder dies */
                        if (fl_joblock_open(dir, 60, &l, &o, &err) != FL_OK) {
                            fprintf(stderr, "open: %s\n", err.msg);
                            _exit(3);
                        }
                    } while (!l && usleep(100) == 0);
                    if (!l)
                        _exit(3);
                    int fd = open(marker, O_CREAT | O_EXCL | O_WRONLY, 0644);
                    if (fd < 0)
                        _exit(2); /* another process holds the lock too */
                    close(fd);
                    usleep(2000);
                    unlink(marker);
                    if ((getpid() + r) % 3 == 0)
                        _exit(o.took_over ? 5 : 4); /* dies holding it: a stale lock */
                    _exit(fl_joblock_release(l, &err) == FL_OK ? (o.took_over ? 7 : 6) : 3);
                }
                int st;
                waitpid(g, &st, 0);
                int code = WIFEXITED(st) ? WEXITSTATUS(st) : 3;
                bad += code == 2 || code == 3;
                got += code >= 4;
                took += code == 5 || code == 7;
            }
            printf("  racer %d: %d of %d rounds held the lock, %d by a takeover, %d errors\n", i, got, R, took, bad);
            fflush(stdout);
            if (write(tally[1], &took, sizeof took) != sizeof took)
                bad++;
            _exit(bad ? 1 : 0);
        }
    }
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    close(tally[1]);
    int took = 0, t;
    while (read(tally[0], &t, sizeof t) == sizeof t)
        took += t;
    close(tally[0]);
    CHECK(took > 0); /* dead holders' locks were taken over, not only free ones */
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fl-joblock-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    setenv("LOCKDIR", dir, 1);
    setvbuf(stdout, NULL, _IONBF, 0); /* nothing buffered is copied into the forked processes */
    RUN(test_held_lock_is_refused_naming_the_holder_and_free_after_release);
    RUN(test_another_hosts_lock_is_stale_by_its_heartbeat_only);
    RUN(test_a_holder_taken_over_learns_it_and_leaves_the_new_lock_alone);
    RUN(test_racing_takers_of_dying_holders_never_hold_at_once);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    return check_summary();
}
