/* source.c -- see source.h. */
#include "dataset/source.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/csv.h"
#include "base/strmap.h"

/* Growable row arrays of one split while reading its CSV. */
typedef struct {
    fl_source_split *s;
    int64_t cap;
    int labelled;
} split_builder;

static int builder_push(split_builder *b, char *path, char *file, int32_t label)
{
    fl_source_split *s = b->s;
    if (s->n == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 1024;
        char **np = realloc(s->paths, sizeof *np * cap);
        if (np)
            s->paths = np;
        char **nf = realloc(s->files, sizeof *nf * cap);
        if (nf)
            s->files = nf;
        int32_t *nl = b->labelled ? realloc(s->labels, sizeof *nl * cap) : s->labels;
        if (b->labelled && nl)
            s->labels = nl;
        if (!np || !nf || (b->labelled && !nl))
            return -1;
        b->cap = cap;
    }
    s->paths[s->n] = path;
    s->files[s->n] = file;
    if (b->labelled)
        s->labels[s->n] = label;
    s->n++;
    return 0;
}

/* The normal form of a relative path: no "." components, no repeated '/'. */
static char *normal_path(const char *p)
{
    char *out = malloc(strlen(p) + 1), *o = out;
    if (!out)
        return NULL;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && !(n == 1 && p[0] == '.')) {
            if (o != out)
                *o++ = '/';
            memcpy(o, p, n);
            o += n;
        }
        p += n + (e ? 1 : 0);
    }
    *o = '\0';
    return out;
}

/* Owned strings, freed together (the duplicate check's keys). */
typedef struct {
    char **s;
    size_t n, cap;
} str_list;

static int push_key(str_list *l, char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **ns = realloc(l->s, sizeof *ns * cap);
        if (!ns)
            return -1;
        l->s = ns;
        l->cap = cap;
    }
    l->s[l->n++] = s;
    return 0;
}

static void free_keys(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
}

/* image_path must stay inside its folder: relative, no ".." component. */
static int path_is_safe(const char *p)
{
    if (!*p || *p == '/')
        return 0;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return 0;
        c += n + (e ? 1 : 0);
    }
    return 1;
}

static fl_code parse_target(const char *s, const char *csv, long line, int32_t *out, fl_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (end && (*end == ' ' || *end == '\t'))
        end++;
    if (!*s || *end || errno || v < 0 || v > INT32_MAX - 1)
        return fl_fail(err, FL_EINPUT, "%s:%ld: target '%s' is not a non-negative integer HINT: targets are class ids 0..C-1", csv, line, s);
    *out = (int32_t)v;
    return FL_OK;
}

static int require_column(fl_csv *csv, const char *name, fl_error *err)
{
    int c = fl_csv_column(csv, name);
    if (c < 0)
        fl_fail(err, FL_EINPUT, "%s: missing column '%s' (header: %s) HINT: the header must name %s", fl_csv_path(csv), name, fl_csv_header_text(csv),
                strcmp(name, "image_path") == 0 && fl_csv_column(csv, "class_name") < 0 ? "image_path" : "class_name,image_path,target");
    return c;
}

/* Reads one CSV of the competition layout into a split. For train.csv the
 * class names are collected into names_by_target (grown as needed). */
static fl_code read_split_csv(fl_source *src, const char *src_dir, fl_split_id split, char ***names_by_target,
                              int *n_targets, fl_error *err)
{
    const char *sub = split == FL_SPLIT_TRAIN ? "train" : "test";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.csv", src_dir, sub);
    if (split == FL_SPLIT_TRAIN)
        snprintf(src->train_csv, sizeof src->train_csv, "%s", path);
    fl_csv *csv = NULL;
    fl_strmap seen = {0}, class_ids = {0};
    str_list keys = {0};
    fl_code rc = fl_csv_open(path, &csv, err);
    if (rc)
        return rc;
    int c_path = require_column(csv, "image_path", err);
    int c_target = fl_csv_column(csv, "target");
    int c_class = fl_csv_column(csv, "class_name");
    if (c_path < 0 || (split == FL_SPLIT_TRAIN && ((c_class = require_column(csv, "class_name", err)) < 0 ||
                                                   (c_target = require_column(csv, "target", err)) < 0))) {
        rc = FL_EINPUT;
        goto done;
    }
    split_builder b = {&src->split[split], 0, c_target >= 0};
    if (fl_strmap_init(&seen, 1024) || fl_strmap_init(&class_ids, 1024)) {
        rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    int r;
    while ((r = fl_csv_next(csv, err)) == 1) {
        long line = fl_csv_line(csv);
        const char *ip = fl_csv_field(csv, c_path);
        int32_t target = 0;
        if (!path_is_safe(ip)) {
            rc = fl_fail(err, FL_EINPUT, "%s:%ld: image_path '%s' is empty, absolute or leaves %s/ HINT: paths are relative to %s/%s/", path, line, ip, sub, src_dir, sub);
            goto done;
        }
        /* "a/./b.png" and "a//b.png" name "a/b.png": compare normal forms. */
        char *key = normal_path(ip);
        if (!key) {
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        long *first = fl_strmap_get(&seen, key);
        if (first) {
            free(key);
            rc = fl_fail(err, FL_EINPUT, "%s:%ld: image_path '%s' is listed twice (first at line %ld) HINT: remove the duplicate row", path, line, ip, *first);
            goto done;
        }
        if (c_target >= 0 && (rc = parse_target(fl_csv_field(csv, c_target), path, line, &target, err))) {
            free(key);
            goto done;
        }
        char *file = malloc(strlen(src_dir) + strlen(sub) + strlen(ip) + 3);
        char *ipd = strdup(ip);
        if (push_key(&keys, key)) {
            free(key);
            free(file);
            free(ipd);
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        if (!file || !ipd || builder_push(&b, ipd, file, target)) {
            free(file);
            free(ipd);
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        sprintf(file, "%s/%s/%s", src_dir, sub, ip);
        if (fl_strmap_put(&seen, key, line)) {
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        if (access(file, R_OK) != 0) {
            rc = fl_fail(err, FL_EINPUT, "%s: cannot open image listed at %s:%ld (%s) HINT: add the file or remove its row", file, path, line, strerror(errno));
            goto done;
        }
        if (split != FL_SPLIT_TRAIN)
            continue;
        /* One name per target and one target per name. */
        const char *name = fl_csv_field(csv, c_class);
        if (target >= *n_targets) {
            int n = *n_targets ? *n_targets : 64;
            while (n <= target)
                n *= 2;
            char **nn = realloc(*names_by_target, sizeof *nn * n);
            if (!nn) {
                rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            memset(nn + *n_targets, 0, sizeof *nn * (size_t)(n - *n_targets));
            *names_by_target = nn;
            *n_targets = n;
        }
        char **slot = &(*names_by_target)[target];
        if (*slot && strcmp(*slot, name) != 0) {
            rc = fl_fail(err, FL_EINPUT, "%s:%ld: target %d is class '%s' here but '%s' on an earlier line HINT: each target id must name one class", path, line, target, name, *slot);
            goto done;
        }
        long *tid = fl_strmap_get(&class_ids, name);
        if (tid && *tid != target) {
            rc = fl_fail(err, FL_EINPUT, "%s:%ld: class '%s' has target %d here but %ld on an earlier line HINT: each class must have one target id", path, line, name, target, *tid);
            goto done;
        }
        if (!*slot) {
            if (!(*slot = strdup(name)) || fl_strmap_put(&class_ids, *slot, target)) {
                rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
                goto done;
            }
        }
    }
    if (r < 0) {
        rc = err->code;
        goto done;
    }
    if (src->split[split].n == 0)
        rc = fl_fail(err, FL_EINPUT, "%s: empty CSV (a header but no rows) HINT: list one image per row", path);
done:
    fl_strmap_free(&seen);
    fl_strmap_free(&class_ids);
    free_keys(&keys);
    fl_csv_close(csv);
    return rc;
}

static fl_code load_csv_layout(const char *src_dir, fl_source *src, fl_error *err)
{
    char **names = NULL;
    int n_names = 0;
    fl_code rc = read_split_csv(src, src_dir, FL_SPLIT_TRAIN, &names, &n_names, err);
    if (!rc)
        rc = read_split_csv(src, src_dir, FL_SPLIT_TEST, NULL, NULL, err);
    int num_classes = 0;
    for (int t = 0; !rc && t < n_names; t++)
        if (names[t])
            num_classes = t + 1;
    for (int t = 0; !rc && t < num_classes; t++)
        if (!names[t])
            rc = fl_fail(err, FL_EINPUT, "%s: no row has target %d, but targets go up to %d HINT: targets must be 0..C-1 with every class present", src->train_csv, t, num_classes - 1);
    fl_source_split *test = &src->split[FL_SPLIT_TEST];
    for (int64_t i = 0; !rc && test->labels && i < test->n; i++)
        if (test->labels[i] >= num_classes)
            rc = fl_fail(err, FL_EINPUT, "%s/test.csv: row %lld has target %d, but train.csv has %d classes", src_dir, (long long)i + 1, test->labels[i], num_classes);
    if (rc) {
        for (int t = 0; t < n_names; t++)
            free(names[t]);
        free(names);
        return rc;
    }
    for (int t = num_classes; t < n_names; t++)
        free(names[t]);
    src->classes = names;
    src->num_classes = num_classes;
    return FL_OK;
}

/* One name per line (CRLF tolerated); returns the count or -1. */
static int read_class_file(const char *path, char ***out, fl_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, FL_EINPUT, "%s: cannot open classes file (%s)", path, strerror(errno)), -1;
    char line[1024];
    char **names = NULL;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        char **nn = realloc(names, sizeof *nn * (n + 1));
        if (!nn || !(nn[n] = strdup(line))) {
            names = nn ? nn : names;
            break;
        }
        names = nn;
        n++;
    }
    fclose(f);
    *out = names;
    return n;
}

static fl_code load_idx_split(const char *src_dir, fl_source *src, fl_split_id split, fl_error *err)
{
    const char *prefix = split == FL_SPLIT_TRAIN ? "train" : "t10k";
    char img_stem[64], lab_stem[64], img_path[4096], lab_path[4096];
    snprintf(img_stem, sizeof img_stem, "%s-images-idx3-ubyte", prefix);
    snprintf(lab_stem, sizeof lab_stem, "%s-labels-idx1-ubyte", prefix);
    if (!fl_idx_find(src_dir, img_stem, img_path, sizeof img_path))
        return fl_fail(err, FL_EINPUT, "%s/%s[.gz]: missing IDX images", src_dir, img_stem);
    if (!fl_idx_find(src_dir, lab_stem, lab_path, sizeof lab_path))
        return fl_fail(err, FL_EINPUT, "%s/%s[.gz]: missing IDX labels", src_dir, lab_stem);
    fl_idx_images *im = &src->idx[split];
    fl_source_split *s = &src->split[split];
    fl_code rc = fl_idx_read_images(img_path, im, err);
    int n = 0;
    if (!rc)
        rc = fl_idx_read_labels(lab_path, &n, &s->labels, err);
    if (!rc && n != im->count)
        rc = fl_fail(err, FL_EINPUT, "%s: %d labels for %d images in %s", lab_path, n, im->count, img_path);
    if (rc)
        return rc;
    s->n = n;
    s->paths = calloc((size_t)n, sizeof *s->paths);
    if (!s->paths)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s/%d", prefix, i);
        if (!(s->paths[i] = strdup(buf)))
            return fl_fail(err, FL_ENOMEM, "out of memory");
    }
    return FL_OK;
}

static fl_code load_idx_layout(const char *src_dir, const char *classes_file, fl_source *src, fl_error *err)
{
    src->is_idx = 1;
    snprintf(src->train_csv, sizeof src->train_csv, "%s/train-labels-idx1-ubyte", src_dir);
    fl_code rc = load_idx_split(src_dir, src, FL_SPLIT_TRAIN, err);
    if (!rc)
        rc = load_idx_split(src_dir, src, FL_SPLIT_TEST, err);
    if (rc)
        return rc;
    int max_label = 0;
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < src->split[s].n; i++)
            if (src->split[s].labels[i] > max_label)
                max_label = src->split[s].labels[i];
    char auto_file[4096];
    snprintf(auto_file, sizeof auto_file, "%s/classes.txt", src_dir);
    if (!classes_file && access(auto_file, R_OK) == 0)
        classes_file = auto_file;
    if (classes_file) {
        int n = read_class_file(classes_file, &src->classes, err);
        if (n < 0)
            return err->code;
        src->num_classes = n;
        if (n <= max_label)
            return fl_fail(err, FL_EINPUT, "%s: %d class names, but labels go up to %d", classes_file, n, max_label);
        return FL_OK;
    }
    src->num_classes = max_label + 1;
    src->classes = calloc((size_t)src->num_classes, sizeof *src->classes);
    for (int c = 0; src->classes && c < src->num_classes; c++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", c);
        src->classes[c] = strdup(buf);
    }
    return src->classes ? FL_OK : fl_fail(err, FL_ENOMEM, "out of memory");
}

fl_code fl_source_load(const char *src_dir, const char *classes_file, fl_source *src, fl_error *err)
{
    memset(src, 0, sizeof *src);
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/train.csv", src_dir);
    fl_code rc;
    if (access(probe, F_OK) == 0 || !fl_idx_find(src_dir, "train-images-idx3-ubyte", probe, sizeof probe))
        rc = load_csv_layout(src_dir, src, err);
    else
        rc = load_idx_layout(src_dir, classes_file, src, err);
    if (rc)
        fl_source_free(src);
    return rc;
}

fl_code fl_source_check_folds(const fl_source *src, int folds, fl_error *err)
{
    int *count = calloc((size_t)src->num_classes, sizeof *count);
    if (!count)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    const fl_source_split *t = &src->split[FL_SPLIT_TRAIN];
    for (int64_t i = 0; i < t->n; i++)
        count[t->labels[i]]++;
    fl_code rc = FL_OK;
    for (int c = 0; c < src->num_classes && !rc; c++)
        if (count[c] < folds)
            rc = fl_fail(err, FL_EINPUT, "%s: class '%s' (target %d) has %d rows, fewer than %d folds HINT: add rows or lower --folds", src->train_csv, src->classes[c], c, count[c], folds);
    free(count);
    return rc;
}

fl_code fl_source_decode(const fl_source *src, fl_split_id split, int64_t row, int channels, fl_image *img,
                         fl_error *err)
{
    if (!src->is_idx)
        return fl_image_decode_file(src->split[split].files[row], channels, img, err);
    const fl_idx_images *im = &src->idx[split];
    size_t npx = (size_t)im->rows * im->cols;
    img->width = im->cols;
    img->height = im->rows;
    img->channels = channels;
    img->px = malloc(npx * channels);
    if (!img->px)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    const unsigned char *g = im->pixels + npx * row;
    for (size_t i = 0; i < npx; i++)
        for (int c = 0; c < channels; c++)
            img->px[i * channels + c] = g[i];
    return FL_OK;
}

void fl_source_free(fl_source *src)
{
    for (int s = 0; s < 2; s++) {
        fl_source_split *sp = &src->split[s];
        for (int64_t i = 0; i < sp->n; i++) {
            if (sp->paths)
                free(sp->paths[i]);
            if (sp->files)
                free(sp->files[i]);
        }
        free(sp->paths);
        free(sp->files);
        free(sp->labels);
        fl_idx_images_free(&src->idx[s]);
    }
    for (int c = 0; src->classes && c < src->num_classes; c++)
        free(src->classes[c]);
    free(src->classes);
    memset(src, 0, sizeof *src);
}
