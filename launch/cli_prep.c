/* cli_prep.c -- `foldline prep SRC OUT.h5 [options]`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset/datafile.h"
#include "dataset/prep.h"
#include "base/progress.h"
#include "base/cores.h"
#include "dist/world.h"
#include "base/tempfile.h"
#include "launch/cli.h"

static const char *prep_usage =
    "usage: foldline prep SRC OUT.h5 [options]\n"
    "\n"
    "SRC holds either the competition layout\n"
    "  train.csv (class_name,image_path,target), test.csv (image_path[,target]),\n"
    "  train/<image_path>, test/<image_path>   (JPEG or PNG; files the CSVs do not list are ignored)\n"
    "or MNIST-family IDX files: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*.\n"
    "\n"
    "  --size N | HxW   output size (default 224 for image folders, the native size for IDX);\n"
    "                   downscaling averages the source area (Pillow's BILINEAR resize)\n"
    "  --channels 1|3   grey or RGB (default 3; grey sources are replicated)\n"
    "  --folds K        stratified folds (default 5)\n"
    "  --seed S         fold seed, 0..4294967295 (default 42; same folds as scikit-learn's\n"
    "                   StratifiedKFold(K, shuffle=True, random_state=S) on train.csv's row order)\n"
    "  --classes FILE   class names, one per line, for IDX sources (default SRC/classes.txt, else ids);\n"
    "                   refused for a CSV layout, whose train.csv names the classes\n"
    "  --threads N      decode threads (default: every core this process may use; more are clamped\n"
    "                   to those, with a warning)\n"
    "  --force          replace OUT.h5 if it exists (a regular file, or the file a symbolic link leads to;\n"
    "                   never a directory, device, FIFO or socket, nor a file of SRC)\n"
    "  --progress S     a progress line every S seconds (default 30; 0: none): one line rewritten\n"
    "                   in place on a terminal, plain lines in a log\n"
    "  --quiet          print nothing on success\n";

static fl_code parse_size(const char *s, int *h, int *w, fl_error *err)
{
    long a, b;
    const char *x = strchr(s, 'x');
    if (!x)
        x = strchr(s, 'X');
    if (!x) {
        if (cli_parse_int("--size", s, 1, 16384, &a, err))
            return FL_EUSAGE;
        *h = *w = (int)a;
        return FL_OK;
    }
    char hs[32];
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof hs)
        return fl_fail(err, FL_EUSAGE, "--size '%s': expected N or HxW", s);
    memcpy(hs, s, n);
    hs[n] = '\0';
    if (cli_parse_int("--size", hs, 1, 16384, &a, err) || cli_parse_int("--size", x + 1, 1, 16384, &b, err))
        return fl_fail(err, FL_EUSAGE, "--size '%s': expected N or HxW with sides 1..16384", s);
    *h = (int)a;
    *w = (int)b;
    return FL_OK;
}

static void print_stats(const fl_prep_options *o, const fl_prep_stats *st)
{
    int64_t n = st->n_train + st->n_test;
    double per = n ? 1e3 / n : 0;
    printf("prep: %s -> %s: %lld train + %lld test images\n", o->src_dir, o->out_path, (long long)st->n_train,
           (long long)st->n_test);
    printf("prep: %lld images in %.2f s = %.0f images/s on %d thread%s\n", (long long)n, st->seconds_total,
           st->seconds_total > 0 ? n / st->seconds_total : 0.0, st->threads, st->threads == 1 ? "" : "s");
    printf("prep: time per image (thread time): decode %.2f ms, resize %.2f ms; scan %.2f s, HDF5 write %.2f s, writer "
           "idle %.2f s\n",
           st->seconds_decode * per, st->seconds_resize * per, st->seconds_scan, st->seconds_write, st->seconds_wait);
}

/* The progress line: images done, their rate, and the ETA. */
typedef struct {
    fl_ticker ticker;
    double t0;
} prep_progress;

static void prep_on_progress(void *ctx, int64_t done, int64_t total)
{
    prep_progress *p = ctx;
    double now = fl_progress_now();
    if (!fl_ticker_due(&p->ticker, now) || done <= 0)
        return;
    double rate = done / (now - p->t0 > 0 ? now - p->t0 : 1e-9);
    char eta[32], line[256];
    fl_progress_duration((double)(total - done) / rate, eta, sizeof eta);
    snprintf(line, sizeof line, "prep: %lld/%lld images (%.0f%%) | %.0f images/s | ETA %s", (long long)done,
             (long long)total, 100.0 * (double)done / (double)total, rate, eta);
    fl_ticker_print(&p->ticker, now, line);
}

/* The options that take a value, in the order they are matched. */
static const char *const prep_value_options[] = {"--size",    "--channels", "--folds",  "--seed",
                                                 "--threads", "--progress", "--classes"};

/* Option opt (one of prep_value_options) with its value v into o or
 * *progress_s; FL_EUSAGE with err set when v is not a value opt takes. */
static fl_code prep_set_option(const char *opt, const char *v, fl_prep_options *o, double *progress_s, fl_error *err)
{
    long x;
    if (!strcmp(opt, "--size")) {
        if (parse_size(v, &o->height, &o->width, err))
            return FL_EUSAGE;
        o->shape_given = 1;
    } else if (!strcmp(opt, "--channels")) {
        if (cli_parse_int("--channels", v, 1, 3, &x, err))
            return FL_EUSAGE;
        if (x == 2)
            return fl_fail(err, FL_EUSAGE, "--channels 2: must be 1 (grey) or 3 (RGB)");
        o->channels = (int)x;
        o->shape_given = 1;
    } else if (!strcmp(opt, "--folds")) {
        if (cli_parse_int("--folds", v, 2, 1000, &x, err))
            return FL_EUSAGE;
        o->folds = (int)x;
    } else if (!strcmp(opt, "--seed")) {
        if (cli_parse_int("--seed", v, 0, 4294967295L, &x, err))
            return FL_EUSAGE;
        o->seed = (uint32_t)x;
    } else if (!strcmp(opt, "--threads")) {
        if (cli_parse_int("--threads", v, 1, 1L << 20, &x, err))
            return FL_EUSAGE;
        int cores = fl_cores_available();
        if (x > cores) {
            fprintf(stderr,
                    "foldline: warning: prep: --threads %ld is more than the %d core%s this process may use; "
                    "using %d HINT: leave out --threads to use every core\n",
                    x, cores, cores == 1 ? "" : "s", cores);
            x = cores;
        }
        o->threads = (int)x;
    } else if (!strcmp(opt, "--progress")) {
        char *end = NULL;
        *progress_s = strtod(v, &end);
        if (end == v || *end || !(*progress_s >= 0) || *progress_s > 1e6)
            return fl_fail(err, FL_EUSAGE, "--progress '%s': expected seconds >= 0 (0: no progress lines)", v);
    } else { /* --classes */
        o->classes_file = v;
    }
    return FL_OK;
}

/* The command line: the options into o, *quiet and *progress_s, SRC and
 * OUT.h5 into o. Returns 1 when --help printed the usage, 0, or -1 for a
 * usage error: err set, or not when an option's value is missing. */
static int prep_parse_args(int argc, char **argv, fl_prep_options *o, int *quiet, double *progress_s, fl_error *err)
{
    int npos = 0;
    const char *pos[2] = {NULL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL, *opt = NULL;
        int r = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(prep_usage, stdout);
            return 1;
        } else if (!strcmp(argv[i], "--force")) {
            o->force = 1;
            continue;
        } else if (!strcmp(argv[i], "--quiet")) {
            *quiet = 1;
            continue;
        }
        for (size_t k = 0; k < sizeof prep_value_options / sizeof *prep_value_options && !r; k++)
            if ((r = cli_opt_value(argc, argv, &i, prep_value_options[k], &v)) != 0)
                opt = prep_value_options[k];
        if (r < 0 || (r > 0 && prep_set_option(opt, v, o, progress_s, err)))
            return -1;
        if (r > 0)
            continue;
        if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(err, FL_EUSAGE, "prep: unknown option '%s' HINT: foldline prep --help", argv[i]);
            return -1;
        }
        if (npos >= 2) {
            fl_fail(err, FL_EUSAGE, "prep: unexpected argument '%s' HINT: foldline prep SRC OUT.h5 [options]", argv[i]);
            return -1;
        }
        pos[npos++] = argv[i];
    }
    if (npos != 2) {
        fl_fail(err, FL_EUSAGE, "prep: needs SRC and OUT.h5 HINT: foldline prep --help");
        return -1;
    }
    o->src_dir = pos[0];
    o->out_path = pos[1];
    return 0;
}

/* SRC that is not there, or not a folder, is a mistake on the command line. */
static fl_code prep_check_src(const char *src_dir, fl_error *err)
{
    struct stat sst;
    int st_rc = stat(src_dir, &sst), st_errno = errno;
    if (st_rc == 0 && S_ISDIR(sst.st_mode))
        return FL_OK;
    char what[160];
    if (st_rc == 0)
        snprintf(what, sizeof what, "is not a folder");
    else if (st_errno == ENOENT || st_errno == ENOTDIR)
        snprintf(what, sizeof what, "does not exist");
    else
        snprintf(what, sizeof what, "cannot be read (%s)", strerror(st_errno));
    return fl_fail(err, FL_EUSAGE,
                   "%s: SRC %s HINT: SRC is the folder that holds train.csv and test.csv (or the IDX files): foldline "
                   "prep SRC OUT.h5",
                   src_dir, what);
}

int cli_prep(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    fl_prep_options o = {0};
    o.channels = 3;
    o.folds = 5;
    o.seed = 42;
    int quiet = 0;
    double progress_s = 30;
    int parsed = prep_parse_args(argc, argv, &o, &quiet, &progress_s, &err);
    if (parsed > 0)
        return 0;
    if (parsed < 0 || prep_check_src(o.src_dir, &err))
        goto usage;
    fl_h5_quiet();
    fl_tempfile_install_signal_cleanup();
    fl_prep_stats st;
    prep_progress pp;
    fl_ticker_init(&pp.ticker, quiet ? NULL : stdout, progress_s);
    pp.t0 = fl_progress_now();
    o.progress = prep_on_progress;
    o.progress_ctx = &pp;
    fl_code rc = fl_prep_run(&o, &st, &err);
    fl_ticker_clear(&pp.ticker);
    if (rc)
        return cli_report(&err);
    if (!quiet && st.grey_source)
        printf("prep: note: the source's images are grey, %dx%d; written as %dx%dx%d (channels x height x width: "
               "the defaults --channels 3, which repeats the grey channel, and --size %s) HINT: --channels 1 --size "
               "%dx%d keeps the source's shape\n",
               st.grey_h, st.grey_w, o.channels, st.out_h, st.out_w, st.is_idx ? "native" : "224", st.grey_h,
               st.grey_w);
    if (!quiet)
        print_stats(&o, &st);
    return 0;
usage:
    if (!err.code) /* only cli_opt_value's "no value" case leaves err unset */
        fl_fail(&err, FL_EUSAGE, "prep: option '%s' needs a value HINT: foldline prep --help", argv[argc - 1]);
    err.code = FL_EUSAGE;
    return cli_report(&err);
}
