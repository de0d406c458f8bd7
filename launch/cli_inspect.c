/* cli_inspect.c -- `foldline inspect FILE.h5`: what a data file or a
 * predictions file holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/datafile.h"
#include "dataset/preds.h"
#include "launch/cli.h"

static fl_code inspect_data(fl_datafile *df, const char *path, fl_error *err)
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
    if ((rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, labels, err)) || (rc = fl_datafile_read_folds(df, fold, err)) ||
        (rc = fl_datafile_fingerprint(df, fingerprint, err)))
        goto done;
    for (int64_t i = 0; i < in->n_train; i++) {
        if (labels[i] < 0 || labels[i] >= in->num_classes || fold[i] < 0 || fold[i] >= in->folds) {
            rc = fl_fail(err, FL_EINPUT, "%s: train row %lld has label %d / fold %d outside 0..%d / 0..%d", path, (long long)i, labels[i], fold[i], in->num_classes - 1, in->folds - 1);
            goto done;
        }
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
    printf("epoch:       %d\n", p.epoch);
    printf("checkpoint:  %s\n", p.checkpoint);
    printf("num_classes: %d\n", p.num_classes);
    printf("n_oof:       %lld\n", (long long)p.n_oof);
    printf("n_test:      %lld\n", (long long)p.n_test);
    printf("fingerprint: %s\n", p.test_fingerprint);
    fl_preds_free(&p);
    return FL_OK;
}

int cli_inspect(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: foldline inspect FILE.h5\n\nPrints a data file's schema version, image shape, train and test counts,\n"
               "whether test labels are present, fold sizes, the test-set fingerprint, and every class\n"
               "with its train count; or a predictions file's model, fold, epoch, checkpoint, class count,\n"
               "OOF and test row counts and test-set fingerprint.\n");
        return 0;
    }
    if (argc != 2) {
        fl_fail(&err, FL_EUSAGE, "inspect: needs exactly one FILE.h5 HINT: foldline inspect --help");
        return cli_report(&err);
    }
    fl_h5_quiet();
    if (fl_preds_probe(argv[1]))
        return inspect_preds(argv[1], &err) ? cli_report(&err) : 0;
    fl_datafile *df;
    fl_code rc = fl_datafile_open(argv[1], &df, &err);
    if (!rc) {
        rc = inspect_data(df, argv[1], &err);
        fl_datafile_close(df);
    }
    return rc ? cli_report(&err) : 0;
}
