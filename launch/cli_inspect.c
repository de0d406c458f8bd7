/* cli_inspect.c -- `foldline inspect FILE.h5 [--quick]`: what a data file
 * or a predictions file holds, and whether it is intact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "dataset/datafile.h"
#include "dataset/preds.h"
#include "launch/cli.h"

/* The text of the "checks:" line; unless quick, after reading every image
 * (which verifies its checksum): a corrupt image is an error naming its row. */
static fl_code inspect_checks(fl_datafile *df, int quick, char line[256], fl_error *err)
{
    const fl_data_info *in = fl_datafile_info(df);
    line[0] = '\0';
    if (in->checks & FL_DATA_CHECK_SEAL)
        snprintf(line, 256, "sealed (length and metadata verified)");
    if (in->checks & FL_DATA_CHECK_PIXELS) {
        size_t n = strlen(line);
        if (quick) {
            snprintf(line + n, 256 - n, "%simage checksums not read (--quick)", n ? "; " : "");
        } else {
            int64_t checked;
            double t0 = fl_clock_mono();
            fl_code rc = fl_datafile_verify_images(df, 0, 1, &checked, err);
            if (rc)
                return rc;
            snprintf(line + n, 256 - n, "%s%lld image checksums verified in %.1f s", n ? "; " : "", (long long)checked,
                     fl_clock_mono() - t0);
        }
    }
    if (!line[0])
        snprintf(line, 256, "none recorded (written by an older foldline or another tool)");
    return FL_OK;
}

static fl_code inspect_data(fl_datafile *df, const char *path, int quick, fl_error *err)
{
    const fl_data_info *in = fl_datafile_info(df);
    int32_t *labels = malloc(sizeof *labels * (size_t)(in->n_train ? in->n_train : 1));
    int32_t *fold = malloc(sizeof *fold * (size_t)(in->n_train ? in->n_train : 1));
    int64_t *per_class = calloc((size_t)in->num_classes, sizeof *per_class);
    int64_t *per_fold = calloc((size_t)in->folds, sizeof *per_fold);
    fl_code rc = FL_OK;
    if (!labels || !fold || !per_class || !per_fold) {
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    char fingerprint[17];
    char checks[256];
    if ((rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, labels, err)) ||
        (rc = fl_datafile_read_folds(df, fold, err)) || (rc = fl_datafile_fingerprint(df, fingerprint, err)) ||
        (rc = inspect_checks(df, quick, checks, err)))
        goto done;
    for (int64_t i = 0; i < in->n_train; i++) { /* in range: the reads check */
        per_class[labels[i]]++;
        per_fold[fold[i]]++;
    }
    printf("file:     %s\n", path);
    printf("format:   foldline-data, version %d\n", FL_DATA_VERSION);
    printf("images:   uint8 (N, %d, %d, %d) = (N, channels, height, width)\n", in->channels, in->height, in->width);
    printf("train:    %lld images\n", (long long)in->n_train);
    printf("test:     %lld images, labels %s\n", (long long)in->n_test, in->has_test_labels ? "present" : "absent");
    printf("folds:    %d (seed %lld):", in->folds, (long long)in->fold_seed);
    for (int k = 0; k < in->folds; k++)
        printf(" %lld", (long long)per_fold[k]);
    printf("\nfingerprint: %s\n", fingerprint);
    printf("checks:   %s\n", checks);
    printf("classes:  %d\n", in->num_classes);
    printf("  %5s  %-32s %8s\n", "id", "name", "train");
    for (int c = 0; c < in->num_classes; c++)
        printf("  %5d  %-32s %8lld\n", c, in->classes[c], (long long)per_class[c]);
done:
    free(labels);
    free(fold);
    free(per_class);
    free(per_fold);
    return rc;
}

static fl_code inspect_preds(const char *path, fl_error *err)
{
    fl_preds p;
    fl_code rc = fl_preds_read(path, &p, err);
    if (rc)
        return rc;
    printf("file:        %s\n", path);
    printf("format:      foldline-preds, version %d\n", FL_PREDS_VERSION);
    printf("model:       %s\n", p.model);
    printf("fold:        %d\n", p.fold);
    printf("epoch:       %d (1-based, as the train log counts)\n", p.epoch + 1);
    printf("checkpoint:  %s\n", p.checkpoint);
    printf("num_classes: %d\n", p.num_classes);
    printf("n_oof:       %lld\n", (long long)p.n_oof);
    printf("n_test:      %lld\n", (long long)p.n_test);
    printf("fingerprint: %s\n", p.test_fingerprint);
    fl_preds_free(&p);
    return FL_OK;
}

/* A libtorch checkpoint (last.pt, best_*.pt) is a zip archive: "PK\3\4". */
static int inspect_is_checkpoint(const char *path)
{
    unsigned char head[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(head, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(head, "PK\3\4", 4);
}

int cli_inspect(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    const char *file = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: foldline inspect FILE.h5 [--quick]\n\nPrints a data file's schema version, image shape, "
                   "train and test counts,\n"
                   "whether test labels are present, fold sizes, the test-set fingerprint, what was\n"
                   "verified, and every class with its train count; or a predictions file's model, fold,\n"
                   "epoch, checkpoint, class count, OOF and test row counts and test-set fingerprint.\n"
                   "A data file is verified whole: its seal (length and metadata) and every image's\n"
                   "checksum, which reads the whole file.\n"
                   "\n"
                   "  --quick   skip reading the images (the seal is still checked)\n");
            return 0;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(&err, FL_EUSAGE, "inspect: unknown option '%s' HINT: foldline inspect --help", argv[i]);
            return cli_report(&err);
        } else if (!file) {
            file = argv[i];
        } else {
            file = NULL;
            break;
        }
    }
    if (!file) {
        fl_fail(&err, FL_EUSAGE, "inspect: needs exactly one FILE.h5 HINT: foldline inspect --help");
        return cli_report(&err);
    }
    fl_h5_quiet();
    if (inspect_is_checkpoint(file)) {
        fl_fail(&err, FL_EUSAGE,
                "%s: is a model checkpoint (a libtorch archive such as last.pt or best_acc.pt in a job directory), "
                "not a data file or predictions file; foldline train reads it to resume the job HINT: inspect the "
                "job's preds.h5, or the data file (foldline inspect DATA.h5)",
                file);
        return cli_report(&err);
    }
    if (fl_preds_probe(file))
        return inspect_preds(file, &err) ? cli_report(&err) : 0;
    fl_datafile *df;
    fl_code rc = fl_datafile_open(file, &df, &err);
    if (!rc) {
        rc = inspect_data(df, file, quick, &err);
        fl_datafile_close(df);
    }
    return rc ? cli_report(&err) : 0;
}
