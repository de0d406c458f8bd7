/* test_preds.c -- the predictions file and the run manifest read back what
 * was written, and their readers refuse what vote must not trust. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dataset/datafile.h"
#include "dataset/preds.h"
#include "vote/manifest.h"
#include "base/tempfile.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* A 3-class prediction set: 4 OOF rows, 5 test rows, rows summing to 1. */
static float oof_probs[4 * 3] = {0.5f, 0.25f, 0.25f, 0.125f, 0.375f, 0.5f, 1, 0, 0, 0.2f, 0.3f, 0.5f};
static float test_probs[5 * 3] = {0.5f, 0.5f, 0, 0.1f, 0.1f, 0.8f, 0, 1, 0, 0.25f, 0.5f, 0.25f, 0.6f, 0.3f, 0.1f};
static int32_t oof_index[4] = {1, 4, 5, 9};

static fl_preds sample_preds(void)
{
    fl_preds p;
    memset(&p, 0, sizeof p);
    snprintf(p.model, sizeof p.model, "cnn_a");
    p.fold = 2;
    p.epoch = 7;
    snprintf(p.checkpoint, sizeof p.checkpoint, "best_acc");
    p.num_classes = 3;
    snprintf(p.test_fingerprint, sizeof p.test_fingerprint, "0123456789abcdef");
    p.n_oof = 4;
    p.oof_index = oof_index;
    p.oof_probs = oof_probs;
    p.n_test = 5;
    p.test_probs = test_probs;
    return p;
}

static void test_preds_round_trip(void)
{
    fl_error err;
    fl_preds w = sample_preds(), r;
    const char *path = tmp_path("preds.h5");
    CHECK(fl_preds_write(path, &w, &err) == FL_OK);
    CHECK(fl_preds_probe(path) == 1);
    CHECK(fl_preds_read(path, &r, &err) == FL_OK);
    CHECK_STR(r.model, "cnn_a");
    CHECK_STR(r.checkpoint, "best_acc");
    CHECK_STR(r.test_fingerprint, "0123456789abcdef");
    CHECK(r.fold == 2 && r.epoch == 7 && r.num_classes == 3 && r.n_oof == 4 && r.n_test == 5);
    CHECK(r.oof_index && !memcmp(r.oof_index, oof_index, sizeof oof_index));
    CHECK(r.oof_probs && !memcmp(r.oof_probs, oof_probs, sizeof oof_probs));
    CHECK(r.test_probs && !memcmp(r.test_probs, test_probs, sizeof test_probs));
    fl_preds_free(&r);
}

static void test_preds_write_leaves_no_temporary(void)
{
    fl_error err;
    fl_preds w = sample_preds();
    CHECK(fl_preds_write(tmp_path("only.h5"), &w, &err) == FL_OK);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q '\\.tmp\\.'", tmpdir);
    CHECK(system(cmd) != 0);
}

static void test_preds_row_not_summing_to_one_is_named(void)
{
    fl_error err;
    fl_preds w = sample_preds(), r;
    float bad[5 * 3];
    memcpy(bad, test_probs, sizeof bad);
    bad[3 * 3 + 1] = 0.9f; /* row 3 sums to 1.4 */
    w.test_probs = bad;
    const char *path = tmp_path("badrow.h5");
    CHECK(fl_preds_write(path, &w, &err) == FL_OK);
    CHECK(fl_preds_read(path, &r, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, path) != NULL);
    CHECK(strstr(err.msg, "/test/probs row 3") != NULL);
}

static void test_preds_index_must_ascend(void)
{
    fl_error err;
    fl_preds w = sample_preds(), r;
    int32_t idx[4] = {1, 5, 4, 9};
    w.oof_index = idx;
    const char *path = tmp_path("unsorted.h5");
    CHECK(fl_preds_write(path, &w, &err) == FL_OK);
    CHECK(fl_preds_read(path, &r, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "/oof/index row 2") != NULL);
}

/* The seal covers every byte: any flipped bit is refused before HDF5 reads
 * the file, and so is a truncated copy. */
static void test_preds_corrupt_or_truncated_file_is_refused(void)
{
    fl_error err;
    fl_preds w = sample_preds(), r;
    const char *path = tmp_path("sealed.h5");
    CHECK(fl_preds_write(path, &w, &err) == FL_OK);
    FILE *f = fopen(path, "rb");
    unsigned char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 4096 && n < sizeof buf);
    int refused = 0, tried = 0;
    for (size_t off = 4096; off < n; off += 97, tried++) {
        buf[off] ^= 0x10;
        f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        buf[off] ^= 0x10;
        fl_code rc = fl_preds_read(path, &r, &err);
        if (rc == FL_OK)
            fl_preds_free(&r);
        else if (rc == FL_EINPUT && strstr(err.msg, "corrupt") && strstr(err.msg, path))
            refused++;
        CHECK(fl_preds_probe(path) == 0);
    }
    CHECK(refused == tried);
    f = fopen(path, "wb");
    fwrite(buf, 1, n - 100, f);
    fclose(f);
    CHECK(fl_preds_read(path, &r, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "truncated") != NULL);
}

/* Reads a whole file (at most 64 KB) into buf; returns its length or -1. */
static long slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long n = (long)fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* No file named ".<name>.tmp.*" is left in tmpdir. */
static int no_temporary_left(const char *name)
{
    char cmd[700], pattern[300];
    snprintf(pattern, sizeof pattern, "%s/.%s.tmp.*", tmpdir, name);
    snprintf(cmd, sizeof cmd, "ls %s >/dev/null 2>&1", pattern);
    return system(cmd) != 0;
}

/* A write that fails as on a full disk (the FOLDLINE_FAULT_WRITE hook) leaves
 * the previous file as it was, no temporary, and one line naming the path. */
static void test_a_full_disk_keeps_the_previous_file(void)
{
    static char before[1 << 16], after[1 << 16];
    fl_error err;
    fl_preds w = sample_preds();
    const char *p = tmp_path("full.h5");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    CHECK(fl_preds_write(path, &w, &err) == FL_OK);
    long n = slurp(path, before, sizeof before);
    w.epoch = 99;
    setenv("FOLDLINE_FAULT_WRITE", "full.h5", 1);
    CHECK(fl_preds_write(path, &w, &err) == FL_EIO);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "No space left on device") && !strchr(err.msg, '\n'));
    CHECK(slurp(path, after, sizeof after) == n && !memcmp(before, after, (size_t)n));
    CHECK(no_temporary_left("full.h5"));

    snprintf(path, sizeof path, "%s", tmp_path("run.cfg"));
    fl_manifest m;
    memset(&m, 0, sizeof m);
    snprintf(m.data_file, sizeof m.data_file, "/data.h5");
    m.n_folds = 1;
    m.n_models = 1;
    snprintf(m.models[0].name, sizeof m.models[0].name, "a");
    m.models[0].weight = 1;
    snprintf(m.vote_method, sizeof m.vote_method, "soft-soft");
    unsetenv("FOLDLINE_FAULT_WRITE");
    CHECK(fl_manifest_write(path, &m, &err) == FL_OK);
    n = slurp(path, before, sizeof before);
    setenv("FOLDLINE_FAULT_WRITE", "run.cfg", 1);
    m.models[0].weight = 2;
    CHECK(fl_manifest_write(path, &m, &err) == FL_EIO);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "No space left on device"));
    CHECK(slurp(path, after, sizeof after) == n && !memcmp(before, after, (size_t)n));
    CHECK(no_temporary_left("run.cfg"));

    snprintf(path, sizeof path, "%s", tmp_path("metrics.csv"));
    unsetenv("FOLDLINE_FAULT_WRITE");
    CHECK(fl_write_file_atomic(path, "epoch\n1\n", 8, &err) == FL_OK);
    setenv("FOLDLINE_FAULT_WRITE", "metrics.csv:1", 1); /* the first metrics.csv from now on */
    CHECK(fl_write_file_atomic(path, "epoch\n1\n2\n", 10, &err) == FL_EIO);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "No space left on device"));
    CHECK(slurp(path, after, sizeof after) == 8 && !memcmp(after, "epoch\n1\n", 8));
    CHECK(no_temporary_left("metrics.csv"));
    CHECK(fl_write_file_atomic(path, "epoch\n1\n2\n", 10, &err) == FL_OK); /* the second one is written */
    unsetenv("FOLDLINE_FAULT_WRITE");
}

static void test_preds_missing_file_is_named(void)
{
    fl_error err;
    fl_preds r;
    CHECK(fl_preds_read(tmp_path("nope.h5"), &r, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "nope.h5") != NULL);
    CHECK(fl_preds_probe(tmp_path("nope.h5")) == 0);
}

static fl_manifest sample_manifest(void)
{
    fl_manifest m;
    memset(&m, 0, sizeof m);
    snprintf(m.data_file, sizeof m.data_file, "/data/with \"quotes\" and \\ backslash.h5");
    m.n_folds = 3;
    m.folds[0] = 0;
    m.folds[1] = 2;
    m.folds[2] = 4;
    m.n_models = 2;
    snprintf(m.models[0].name, sizeof m.models[0].name, "cnn_a");
    m.models[0].weight = 1.0;
    snprintf(m.models[1].name, sizeof m.models[1].name, "resnet-18.v2");
    m.models[1].weight = 1.0 / 3.0;
    snprintf(m.vote_method, sizeof m.vote_method, "hard-hard");
    return m;
}

static void test_manifest_round_trip(void)
{
    fl_error err;
    fl_manifest w = sample_manifest(), r;
    const char *path = tmp_path("run.cfg");
    CHECK(fl_manifest_write(path, &w, &err) == FL_OK);
    CHECK(fl_manifest_read(path, &r, &err) == FL_OK);
    CHECK_STR(r.data_file, w.data_file);
    CHECK(r.n_folds == 3 && r.folds[0] == 0 && r.folds[1] == 2 && r.folds[2] == 4);
    CHECK(r.n_models == 2);
    CHECK_STR(r.models[0].name, "cnn_a");
    CHECK_STR(r.models[1].name, "resnet-18.v2");
    CHECK(r.models[0].weight == 1.0);
    CHECK(r.models[1].weight == 1.0 / 3.0); /* every digit kept */
    CHECK_STR(r.vote_method, "hard-hard");
}

static fl_code read_text(const char *text, fl_manifest *m, fl_error *err)
{
    const char *path = tmp_path("hand.cfg");
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return fl_manifest_read(path, m, err);
}

static void test_manifest_defaults(void)
{
    fl_error err;
    fl_manifest m;
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [1];\nmodels = ( { name = \"a\"; } );\n", &m, &err) == FL_OK);
    CHECK(m.models[0].weight == 1.0);
    CHECK_STR(m.vote_method, "soft-soft");
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [1];\nmodels = ( { name = \"a\"; weight = 2; } );\n", &m, &err) ==
          FL_OK);
    CHECK(m.models[0].weight == 2.0);
}

static void test_manifest_errors_name_file_and_line(void)
{
    fl_error err;
    fl_manifest m;
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"a\"; } );\ncolour = 3;\n", &m, &err) ==
          FL_EINPUT);
    CHECK(strstr(err.msg, "hand.cfg:4:") && strstr(err.msg, "colour"));
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0, 0];\nmodels = ( { name = \"a\"; } );\n", &m, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "hand.cfg:2:") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"a\"; },\n { name = \"a\"; } );\n", &m,
                    &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "twice") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"../x\"; } );\n", &m, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "hand.cfg:3:") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"a\"; weight = -1.0; } );\n", &m,
                    &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "weight") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"a\"; } );\nvote_method = \"avg\";\n",
                    &m, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "hand.cfg:4:") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0]\nmodels = ( );\n", &m, &err) == FL_EINPUT); /* syntax */
    CHECK(strstr(err.msg, "hand.cfg:") != NULL);
    CHECK(read_text("folds = [0];\nmodels = ( { name = \"a\"; } );\n", &m, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "data_file") != NULL);
}

int main(void)
{
    fl_h5_quiet();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/foldline-test-preds-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_preds_round_trip);
    RUN(test_preds_write_leaves_no_temporary);
    RUN(test_preds_row_not_summing_to_one_is_named);
    RUN(test_preds_index_must_ascend);
    RUN(test_preds_corrupt_or_truncated_file_is_refused);
    RUN(test_a_full_disk_keeps_the_previous_file);
    RUN(test_preds_missing_file_is_named);
    RUN(test_manifest_round_trip);
    RUN(test_manifest_defaults);
    RUN(test_manifest_errors_name_file_and_line);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
