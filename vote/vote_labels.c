/* vote_labels.c -- test labels for `foldline vote --labels CSV`.
 *
 * The CSV has the columns image_path,target (more are ignored), one row per
 * test image, matched to the data file's /test/paths by image_path. Every
 * test row must be covered and every CSV row must name a test image once:
 * a partial or foreign label file would make the test accuracies lie.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/csv.h"
#include "base/strmap.h"
#include "vote/vote_internal.h"

static fl_code labels_target(const char *csv_path, long line, const char *s, int num_classes, int32_t *out,
                             fl_error *err)
{
    char *end;
    errno = 0;
    long t = strtol(s, &end, 10);
    if (!*s || *end || errno || t < 0 || t >= num_classes)
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: target '%s' is not a class id 0..%d HINT: --labels takes image_path,target with the "
                       "data file's class ids",
                       csv_path, line, s, num_classes - 1);
    *out = (int32_t)t;
    return FL_OK;
}

static fl_code labels_read(vote_state *v, fl_csv *csv, const fl_strmap *row_of, long *line_of, fl_error *err)
{
    const char *path = fl_csv_path(csv);
    int c_path = fl_csv_column(csv, "image_path"), c_target = fl_csv_column(csv, "target");
    if (c_path < 0 || c_target < 0)
        return fl_fail(
            err, FL_EINPUT,
            "%s: missing column '%s' (header: %s) HINT: --labels takes a CSV with the columns image_path,target", path,
            c_path < 0 ? "image_path" : "target", fl_csv_header_text(csv));
    int r;
    while ((r = fl_csv_next(csv, err)) == 1) {
        long line = fl_csv_line(csv);
        const char *ip = fl_csv_field(csv, c_path);
        long *row = fl_strmap_get(row_of, ip);
        if (!row)
            return fl_fail(err, FL_EINPUT,
                           "%s:%ld: image_path '%s' is not a test image of %s HINT: --labels must label the test set "
                           "of the run's data file",
                           path, line, ip, v->data_path);
        if (line_of[*row])
            return fl_fail(err, FL_EINPUT, "%s:%ld: image_path '%s' is labelled twice (first at line %ld)", path, line,
                           ip, line_of[*row]);
        fl_code rc = labels_target(path, line, fl_csv_field(csv, c_target), v->num_classes, &v->test_labels[*row], err);
        if (rc)
            return rc;
        line_of[*row] = line;
    }
    if (r < 0)
        return err->code;
    for (int64_t i = 0; i < v->n_test; i++)
        if (!line_of[i])
            return fl_fail(err, FL_EINPUT,
                           "%s: test image '%s' (test row %lld) has no label HINT: --labels must cover every test row",
                           path, v->test_paths[i], (long long)i);
    return FL_OK;
}

fl_code vote_labels_from_csv(vote_state *v, const char *csv_path, fl_error *err)
{
    FILE *probe = fopen(csv_path, "r");
    if (!probe)
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot open the labels CSV (%s) HINT: --labels takes a CSV image_path,target", csv_path,
                       strerror(errno));
    fclose(probe);
    fl_strmap row_of = {0};
    fl_csv *csv = NULL;
    size_t n = (size_t)(v->n_test ? v->n_test : 1);
    long *line_of = calloc(n, sizeof *line_of);
    free(v->test_labels);
    v->test_labels = malloc(n * sizeof *v->test_labels);
    fl_code rc = FL_OK;
    if (!line_of || !v->test_labels || fl_strmap_init(&row_of, n)) {
        rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", csv_path);
        goto done;
    }
    for (int64_t i = 0; i < v->n_test; i++)
        if (fl_strmap_put(&row_of, v->test_paths[i], (long)i)) {
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", csv_path);
            goto done;
        }
    if ((rc = fl_csv_open_hint(csv_path, "check the path given to --labels", &csv, err)))
        goto done;
    rc = labels_read(v, csv, &row_of, line_of, err);
done:
    if (csv)
        fl_csv_close(csv);
    fl_strmap_free(&row_of);
    free(line_of);
    if (rc) {
        free(v->test_labels);
        v->test_labels = NULL;
    }
    return rc;
}
