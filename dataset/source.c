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

/* train.csv's classes: the name of each target id and the line that first
 * gave it, so that a later disagreement (in train.csv or test.csv) names
 * both places. */
typedef struct {
    char **names; /* (n) NULL where no row has that target */
    long *lines;  /* (n) */
    int n;        /* slots allocated */
    int num;      /* classes: the highest target + 1 */
} class_table;

static void class_table_free(class_table *ct)
{
    for (int t = 0; t < ct->n; t++)
        free(ct->names[t]);
    free(ct->names);
    free(ct->lines);
    memset(ct, 0, sizeof *ct);
}

/* Grows the table so that slot `target` exists; -1 when memory runs out. */
static int class_table_reserve(class_table *ct, int target)
{
    if (target < ct->n)
        return 0;
    int n = ct->n ? ct->n : 64;
    while (n <= target)
        n *= 2;
    char **nn = realloc(ct->names, sizeof *nn * n);
    if (!nn)
        return -1;
    ct->names = nn;
    long *nl = realloc(ct->lines, sizeof *nl * n);
    if (!nl)
        return -1;
    ct->lines = nl;
    memset(ct->names + ct->n, 0, sizeof *nn * (size_t)(n - ct->n));
    memset(ct->lines + ct->n, 0, sizeof *nl * (size_t)(n - ct->n));
    ct->n = n;
    return 0;
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
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: target '%s' is not a non-negative integer HINT: targets are class ids 0..C-1", csv,
                       line, s);
    if (v >= FL_SOURCE_MAX_CLASSES) /* the class table is indexed by target: no hostile 2^31 */
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: target %ld is beyond the %d classes foldline takes (targets 0..%d) HINT: targets are "
                       "class ids 0..C-1",
                       csv, line, v, FL_SOURCE_MAX_CLASSES, FL_SOURCE_MAX_CLASSES - 1);
    *out = (int32_t)v;
    return FL_OK;
}

static int require_column(fl_csv *csv, const char *name, fl_error *err)
{
    int c = fl_csv_column(csv, name);
    if (c < 0)
        fl_fail(err, FL_EINPUT, "%s: missing column '%s' (header: %s) HINT: the header must name %s", fl_csv_path(csv),
                name, fl_csv_header_text(csv),
                strcmp(name, "image_path") == 0 && fl_csv_column(csv, "class_name") < 0
                    ? "image_path"
                    : "class_name,image_path,target");
    return c;
}

/* train.csv: one name per target and one target per name, each
 * disagreement naming the line that said otherwise. */
static fl_code train_row_class(class_table *ct, fl_strmap *class_ids, const char *path, long line, int32_t target,
                               const char *name, fl_error *err)
{
    if (class_table_reserve(ct, target))
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    char **slot = &ct->names[target];
    if (*slot && strcmp(*slot, name) != 0)
        return fl_fail(
            err, FL_EINPUT,
            "%s:%ld: target %d is class '%s' here but '%s' at line %ld HINT: each target id must name one class", path,
            line, target, name, *slot, ct->lines[target]);
    long *tid = fl_strmap_get(class_ids, name);
    if (tid && *tid != target)
        return fl_fail(
            err, FL_EINPUT,
            "%s:%ld: class '%s' has target %d here but %ld at line %ld HINT: each class must have one target id", path,
            line, name, target, *tid, ct->lines[*tid]);
    if (!*slot) {
        if (!(*slot = strdup(name)) || fl_strmap_put(class_ids, *slot, target))
            return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        ct->lines[target] = line;
    }
    return FL_OK;
}

/* test.csv against train.csv's classes: a target must be one of them, and a
 * class_name (when the column is there and the field not empty) must be the
 * class train.csv gives that target, or one of its classes. */
static fl_code test_row_class(const class_table *ct, const fl_strmap *class_ids, const char *train_csv,
                              const char *path, long line, int has_target, int32_t target, const char *name,
                              fl_error *err)
{
    if (has_target && target >= ct->num)
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: target %d, but %s has %d classes (targets 0..%d) HINT: test.csv's targets are "
                       "train.csv's class ids",
                       path, line, target, train_csv, ct->num, ct->num - 1);
    if (!name || !*name)
        return FL_OK;
    if (has_target && strcmp(ct->names[target], name) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: target %d is class '%s' here but '%s' in %s:%ld HINT: test.csv's class_name and target "
                       "must be as train.csv gives them",
                       path, line, target, name, ct->names[target], train_csv, ct->lines[target]);
    if (!has_target && !fl_strmap_get(class_ids, name))
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: class '%s' is not a class of %s HINT: test.csv's class_name must be one of train.csv's "
                       "classes (or leave the field empty)",
                       path, line, name, train_csv);
    return FL_OK;
}

/* One CSV of the competition layout while read_split_csv reads it. */
typedef struct {
    fl_split_id split;
    const char *src_dir, *sub; /* SRC, and "train" or "test" */
    const char *path;          /* the CSV */
    fl_csv *csv;
    int c_path, c_target, c_class; /* the columns; -1: not there */
    split_builder b;
    fl_strmap seen;      /* normal form of each image_path -> its line */
    fl_strmap class_ids; /* class name -> target */
    str_list keys;       /* seen's keys, freed together */
} split_reader;

/* The CSV's columns (train.csv needs class_name and target), the split's
 * builder, and for test.csv train.csv's class names by target. */
static fl_code split_csv_begin(split_reader *r, fl_source *src, const class_table *ct, fl_error *err)
{
    r->c_path = require_column(r->csv, "image_path", err);
    r->c_target = fl_csv_column(r->csv, "target");
    r->c_class = fl_csv_column(r->csv, "class_name");
    if (r->c_path < 0 || (r->split == FL_SPLIT_TRAIN && ((r->c_class = require_column(r->csv, "class_name", err)) < 0 ||
                                                         (r->c_target = require_column(r->csv, "target", err)) < 0)))
        return FL_EINPUT;
    r->b = (split_builder){&src->split[r->split], 0, r->c_target >= 0};
    if (fl_strmap_init(&r->seen, 1024) || fl_strmap_init(&r->class_ids, 1024))
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", r->path);
    for (int t = 0; r->split != FL_SPLIT_TRAIN && t < ct->num; t++)
        if (fl_strmap_put(&r->class_ids, ct->names[t], t))
            return fl_fail(err, FL_ENOMEM, "%s: out of memory", r->path);
    return FL_OK;
}

/* The row's image_path ip, checked: relative and inside the split's folder,
 * and not listed before; *key its normal form ("a/./b.png" and "a//b.png"
 * name "a/b.png"), the caller's to free. */
static fl_code split_csv_key(split_reader *r, long line, const char *ip, char **key, fl_error *err)
{
    if (!path_is_safe(ip))
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: image_path '%s' is empty, absolute or leaves %s/ HINT: paths are relative to %s/%s/",
                       r->path, line, ip, r->sub, r->src_dir, r->sub);
    if (!(*key = normal_path(ip)))
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", r->path);
    long *first = fl_strmap_get(&r->seen, *key);
    if (first) {
        free(*key);
        return fl_fail(err, FL_EINPUT,
                       "%s:%ld: image_path '%s' is listed twice (first at line %ld) HINT: remove the duplicate row",
                       r->path, line, ip, *first);
    }
    return FL_OK;
}

/* Adds the row to the split (its image_path ip, the file SRC/sub/ip and its
 * target), key to the paths seen (owned by r->keys from here on), and
 * checks that the file can be read. */
static fl_code split_csv_push(split_reader *r, long line, const char *ip, char *key, int32_t target, fl_error *err)
{
    char *file = malloc(strlen(r->src_dir) + strlen(r->sub) + strlen(ip) + 3);
    char *ipd = strdup(ip);
    if (push_key(&r->keys, key)) {
        free(key);
        free(file);
        free(ipd);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", r->path);
    }
    if (!file || !ipd || builder_push(&r->b, ipd, file, target)) {
        free(file);
        free(ipd);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", r->path);
    }
    sprintf(file, "%s/%s/%s", r->src_dir, r->sub, ip);
    if (fl_strmap_put(&r->seen, key, line))
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", r->path);
    if (access(file, R_OK) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot open image listed at %s:%ld (%s) HINT: add the file or remove its row", file,
                       r->path, line, strerror(errno));
    return FL_OK;
}

/* The CSV's current row: its image, its target, and its class against the
 * class table (train.csv fills it, test.csv is checked against it). */
static fl_code split_csv_row(split_reader *r, fl_source *src, class_table *ct, fl_error *err)
{
    long line = fl_csv_line(r->csv);
    const char *ip = fl_csv_field(r->csv, r->c_path);
    int32_t target = 0;
    char *key = NULL;
    fl_code rc = split_csv_key(r, line, ip, &key, err);
    if (rc)
        return rc;
    if (r->c_target >= 0 && (rc = parse_target(fl_csv_field(r->csv, r->c_target), r->path, line, &target, err))) {
        free(key);
        return rc;
    }
    if ((rc = split_csv_push(r, line, ip, key, target, err)))
        return rc;
    const char *name = r->c_class >= 0 ? fl_csv_field(r->csv, r->c_class) : NULL;
    return r->split == FL_SPLIT_TRAIN
               ? train_row_class(ct, &r->class_ids, r->path, line, target, name, err)
               : test_row_class(ct, &r->class_ids, src->train_csv, r->path, line, r->c_target >= 0, target, name, err);
}

/* Reads one CSV of the competition layout into a split. train.csv fills the
 * class table; test.csv is checked against it (ct->num set). */
static fl_code read_split_csv(fl_source *src, const char *src_dir, fl_split_id split, class_table *ct, fl_error *err)
{
    split_reader r = {0};
    r.split = split;
    r.src_dir = src_dir;
    r.sub = split == FL_SPLIT_TRAIN ? "train" : "test";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.csv", src_dir, r.sub);
    r.path = path;
    if (split == FL_SPLIT_TRAIN)
        snprintf(src->train_csv, sizeof src->train_csv, "%s", path);
    fl_code rc = fl_csv_open_hint(path, "check the path; SRC must hold train.csv and test.csv", &r.csv, err);
    if (rc)
        return rc;
    if ((rc = split_csv_begin(&r, src, ct, err)))
        goto done;
    int got;
    while ((got = fl_csv_next(r.csv, err)) == 1)
        if ((rc = split_csv_row(&r, src, ct, err)))
            goto done;
    if (got < 0)
        rc = err->code;
    else if (src->split[split].n == 0)
        rc = fl_fail(err, FL_EINPUT, "%s: empty CSV (a header but no rows) HINT: list one image per row", path);
done:
    fl_strmap_free(&r.seen);
    fl_strmap_free(&r.class_ids);
    free_keys(&r.keys);
    fl_csv_close(r.csv);
    return rc;
}

/* train.csv, its classes (every target id 0..C-1 present), then test.csv
 * against them. */
static fl_code load_csv_layout(const char *src_dir, fl_source *src, fl_error *err)
{
    class_table ct = {0};
    fl_code rc = read_split_csv(src, src_dir, FL_SPLIT_TRAIN, &ct, err);
    for (int t = 0; !rc && t < ct.n; t++)
        if (ct.names[t])
            ct.num = t + 1;
    for (int t = 0; !rc && t < ct.num; t++)
        if (!ct.names[t])
            rc = fl_fail(err, FL_EINPUT,
                         "%s: no row has target %d, but targets go up to %d HINT: targets must be 0..C-1 with every "
                         "class present",
                         src->train_csv, t, ct.num - 1);
    if (!rc)
        rc = read_split_csv(src, src_dir, FL_SPLIT_TEST, &ct, err);
    if (rc) {
        class_table_free(&ct);
        return rc;
    }
    for (int t = ct.num; t < ct.n; t++)
        free(ct.names[t]);
    free(ct.lines);
    src->classes = ct.names;
    src->num_classes = ct.num;
    return FL_OK;
}

/* One name per line (CRLF tolerated, blank lines skipped), each with its
 * line number, into src->classes and src->class_lines. */
static fl_code read_class_file(const char *path, fl_source *src, fl_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot open classes file (%s) HINT: --classes takes a text file of class names, one a line",
                       path, strerror(errno));
    snprintf(src->classes_file, sizeof src->classes_file, "%s", path);
    char *line = NULL;
    size_t cap = 0;
    long at = 0;
    fl_code rc = FL_OK;
    while (getline(&line, &cap, f) >= 0) {
        at++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        int n = src->num_classes;
        char **nn = realloc(src->classes, sizeof *nn * (n + 1));
        if (nn)
            src->classes = nn;
        long *nl = realloc(src->class_lines, sizeof *nl * (n + 1));
        if (nl)
            src->class_lines = nl;
        if (!nn || !nl || !(nn[n] = strdup(line))) {
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
            break;
        }
        nl[n] = at;
        src->num_classes = n + 1;
    }
    if (!rc && ferror(f))
        rc = fl_fail(err, FL_EIO, "%s: read error (%s)", path, strerror(errno));
    if (!rc && src->num_classes == 0)
        rc = fl_fail(err, FL_EINPUT,
                     "%s: names no class (no line that is not blank) HINT: write one class name a line, the name of "
                     "label 0 first",
                     path);
    free(line);
    fclose(f);
    return rc;
}

static fl_code load_idx_split(const char *src_dir, fl_source *src, fl_split_id split, fl_error *err)
{
    const char *prefix = split == FL_SPLIT_TRAIN ? "train" : "t10k";
    char img_stem[64], lab_stem[64], img_path[4096];
    char *lab_path = src->idx_labels[split];
    snprintf(img_stem, sizeof img_stem, "%s-images-idx3-ubyte", prefix);
    snprintf(lab_stem, sizeof lab_stem, "%s-labels-idx1-ubyte", prefix);
    if (!fl_idx_find(src_dir, img_stem, img_path, sizeof img_path))
        return fl_fail(err, FL_EINPUT, "%s/%s[.gz]: missing IDX images", src_dir, img_stem);
    if (!fl_idx_find(src_dir, lab_stem, lab_path, sizeof src->idx_labels[split]))
        return fl_fail(err, FL_EINPUT, "%s/%s[.gz]: missing IDX labels", src_dir, lab_stem);
    fl_idx_images *im = &src->idx[split];
    fl_source_split *s = &src->split[split];
    fl_code rc = fl_idx_read_images(img_path, im, err);
    int n = 0;
    if (!rc)
        rc = fl_idx_read_labels(lab_path, &n, &s->labels, err);
    if (!rc && n != im->count)
        rc = fl_fail(err, FL_EINPUT,
                     "%s: at byte 4: the header says %d labels, but %s says %d images (at byte 4) HINT: the label and "
                     "image files must be of one set",
                     lab_path, n, img_path, im->count);
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
    fl_code rc = load_idx_split(src_dir, src, FL_SPLIT_TRAIN, err);
    snprintf(src->train_csv, sizeof src->train_csv, "%s", src->idx_labels[FL_SPLIT_TRAIN]);
    if (!rc)
        rc = load_idx_split(src_dir, src, FL_SPLIT_TEST, err);
    if (rc)
        return rc;
    char auto_file[4096];
    snprintf(auto_file, sizeof auto_file, "%s/classes.txt", src_dir);
    if (!classes_file && access(auto_file, R_OK) == 0)
        classes_file = auto_file;
    if (classes_file) {
        if ((rc = read_class_file(classes_file, src, err)))
            return rc;
        /* the first label without a name, by its byte (label i is byte 8 + i) */
        int n = src->num_classes;
        for (int s = 0; s < 2; s++)
            for (int64_t i = 0; i < src->split[s].n; i++)
                if (src->split[s].labels[i] >= n)
                    return fl_fail(
                        err, FL_EINPUT,
                        "%s: at byte %lld: label %d, but %s names %d classes (labels 0..%d; the last, '%s', on line "
                        "%ld) HINT: add a name for every label to the classes file, one a line, label 0's first",
                        src->idx_labels[s], 8 + (long long)i, src->split[s].labels[i], classes_file, n, n - 1,
                        src->classes[n - 1], src->class_lines[n - 1]);
        return FL_OK;
    }
    int max_label = 0;
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < src->split[s].n; i++)
            if (src->split[s].labels[i] > max_label)
                max_label = src->split[s].labels[i];
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
        if (count[c] == 0 && src->class_lines)
            rc = fl_fail(err, FL_EINPUT,
                         "%s:%ld: class '%s' (label %d) has no image in %s HINT: remove the names of labels the files "
                         "do not have from the classes file, or check that it belongs to these files",
                         src->classes_file, src->class_lines[c], src->classes[c], c, src->train_csv);
        else if (count[c] < folds)
            rc = fl_fail(err, FL_EINPUT,
                         "%s: class '%s' (target %d) has %d rows, fewer than %d folds HINT: add rows or lower --folds",
                         src->train_csv, src->classes[c], c, count[c], folds);
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
    free(src->class_lines);
    memset(src, 0, sizeof *src);
}
