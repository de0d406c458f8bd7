/* test_manifest.c -- the run manifest (RUN_DIR/run.cfg, vote/manifest.h)
 * reads back what was written, fills its defaults, and names the file and
 * line of what it refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tmpdir.h"
#include "base/tempfile.h"
#include "vote/manifest.h"

static const char *tmp_path(const char *name)
{
    static char buf[600];
    return test_tmp_path(buf, sizeof buf, name);
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
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0, 0];\nmodels = ( { name = \"a\"; } );\n", &m, &err) ==
          FL_EINPUT);
    CHECK(strstr(err.msg, "hand.cfg:2:") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"a\"; },\n { name = \"a\"; } );\n", &m,
                    &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "twice") != NULL);
    CHECK(read_text("data_file = \"d.h5\";\nfolds = [0];\nmodels = ( { name = \"../x\"; } );\n", &m, &err) ==
          FL_EINPUT);
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
    RUN(test_manifest_round_trip);
    RUN(test_manifest_defaults);
    RUN(test_manifest_errors_name_file_and_line);
    return check_summary();
}
