/* imagelist.c -- see imagelist.h. */
#include "dataset/imagelist.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dataset/csv.h"
#include "dataset/image.h"

typedef struct {
    char **s;
    int64_t n, cap;
} list_strs;

static int list_push(list_strs *l, char *s)
{
    if (!s)
        return -1;
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 256;
        char **ns = realloc(l->s, sizeof *ns * (size_t)cap);
        if (!ns) {
            free(s);
            return -1;
        }
        l->s = ns;
        l->cap = cap;
    }
    l->s[l->n++] = s;
    return 0;
}

static int list_is_image(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Every image file below root/rel, their paths relative to root. */
static fl_code list_walk(const char *root, const char *rel, list_strs *out, int depth, fl_error *err)
{
    char dir[8192];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    if (depth > 64)
        return fl_fail(err, FL_EINPUT, "%s: folders nested more than 64 deep", dir);
    DIR *d = opendir(dir);
    if (!d)
        return fl_fail(err, FL_EINPUT, "%s: cannot read the folder (%s)", dir, strerror(errno));
    fl_code rc = FL_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[8192], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            continue; /* a dangling link is no image */
        if (S_ISDIR(st.st_mode))
            rc = list_walk(root, sub, out, depth + 1, err);
        else if (S_ISREG(st.st_mode) && list_is_image(e->d_name) && list_push(out, strdup(sub)))
            rc = fl_fail(err, FL_ENOMEM, "out of memory listing %s", root);
    }
    closedir(d);
    return rc;
}

static int list_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static fl_code list_files(fl_image_list *l, list_strs *paths, const char *base, fl_error *err)
{
    l->n = paths->n;
    l->paths = paths->s;
    l->files = calloc((size_t)(l->n ? l->n : 1), sizeof *l->files);
    if (!l->files)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < l->n; i++) {
        const char *p = l->paths[i];
        size_t n = strlen(base) + strlen(p) + 2;
        if (!(l->files[i] = malloc(n)))
            return fl_fail(err, FL_ENOMEM, "out of memory");
        if (p[0] == '/' || !*base)
            snprintf(l->files[i], n, "%s", p);
        else
            snprintf(l->files[i], n, "%s/%s", base, p);
    }
    return FL_OK;
}

static fl_code list_folder(fl_image_list *l, const char *input, fl_error *err)
{
    list_strs paths = {0};
    fl_code rc = list_walk(input, "", &paths, 0, err);
    if (!rc && paths.n == 0)
        rc = fl_fail(err, FL_EINPUT,
                     "%s: an empty folder: no .png, .jpg or .jpeg file in it or below it HINT: give the folder that "
                     "holds the images (e.g. SRC/test), a CSV with an image_path column, or a data file",
                     input);
    if (!rc)
        qsort(paths.s, (size_t)paths.n, sizeof *paths.s, list_cmp);
    if (rc) {
        for (int64_t i = 0; i < paths.n; i++)
            free(paths.s[i]);
        free(paths.s);
        return rc;
    }
    return list_files(l, &paths, input, err);
}

static fl_code list_csv(fl_image_list *l, const char *input, fl_error *err)
{
    fl_csv *csv;
    fl_code rc = fl_csv_open_hint(input, "check the path of the CSV that lists the images", &csv, err);
    if (rc)
        return rc;
    list_strs paths = {0};
    int col = fl_csv_column(csv, "image_path"), r = 0;
    if (col < 0)
        rc = fl_fail(err, FL_EINPUT,
                     "%s: no image_path column (header: %s) HINT: INPUT is a folder of images, a CSV whose image_path "
                     "column lists them (relative to the CSV's folder), or a foldline data file",
                     input, fl_csv_header_text(csv));
    while (!rc && (r = fl_csv_next(csv, err)) == 1) {
        const char *p = fl_csv_field(csv, col);
        if (!*p)
            rc = fl_fail(err, FL_EINPUT, "%s:%ld: an empty image_path HINT: list one image per row", input,
                         fl_csv_line(csv));
        else if (list_push(&paths, strdup(p)))
            rc = fl_fail(err, FL_ENOMEM, "out of memory reading %s", input);
    }
    if (!rc && r < 0)
        rc = err->code;
    fl_csv_close(csv);
    if (!rc && paths.n == 0)
        rc = fl_fail(err, FL_EINPUT,
                     "%s: an empty CSV (a header but no rows) HINT: list one image per row under image_path", input);
    if (rc) {
        for (int64_t i = 0; i < paths.n; i++)
            free(paths.s[i]);
        free(paths.s);
        return rc;
    }
    char base[4096];
    snprintf(base, sizeof base, "%s", input);
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = '\0';
    else
        base[0] = '\0';
    if (slash == base) /* a CSV in / */
        snprintf(base, sizeof base, "/");
    return list_files(l, &paths, base, err);
}

/* HDF5's signature at 0, 512, 1024, ... (a data file has a user block). */
static int list_is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int found = 0;
    for (long off = 0; !found && off <= (1L << 20); off = off ? off * 2 : 512) {
        unsigned char b[8];
        if (fseek(f, off, SEEK_SET) != 0 || fread(b, 1, 8, f) != 8)
            break;
        found = !memcmp(b, sig, 8);
    }
    fclose(f);
    return found;
}

static fl_code list_datafile(fl_image_list *l, const char *input, fl_error *err)
{
    fl_h5_quiet();
    fl_code rc = fl_datafile_open(input, &l->df, err);
    if (rc)
        return rc;
    const fl_data_info *in = fl_datafile_info(l->df);
    l->n = in->n_test;
    l->channels = in->channels;
    l->height = in->height;
    l->width = in->width;
    if (!l->n)
        return fl_fail(err, FL_EINPUT,
                       "%s: the data file has no test rows HINT: predict reads a data file's /test images; give a "
                       "folder of images or a CSV instead",
                       input);
    return fl_datafile_read_paths(l->df, FL_SPLIT_TEST, &l->paths, err);
}

fl_code fl_image_list_open(const char *input, fl_image_list *l, fl_error *err)
{
    memset(l, 0, sizeof *l);
    snprintf(l->source, sizeof l->source, "%s", input);
    struct stat st;
    if (stat(input, &st) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot open INPUT (%s) HINT: give a folder of images, a CSV with an image_path column, or "
                       "a foldline data file",
                       input, strerror(errno));
    fl_code rc;
    if (S_ISDIR(st.st_mode)) {
        l->kind = FL_INPUT_FOLDER;
        rc = list_folder(l, input, err);
    } else if (list_is_hdf5(input)) {
        l->kind = FL_INPUT_DATAFILE;
        rc = list_datafile(l, input, err);
    } else {
        l->kind = FL_INPUT_CSV;
        rc = list_csv(l, input, err);
    }
    if (rc)
        fl_image_list_free(l);
    return rc;
}

void fl_image_list_free(fl_image_list *l)
{
    for (int64_t i = 0; i < l->n; i++) {
        if (l->paths)
            free(l->paths[i]);
        if (l->files)
            free(l->files[i]);
    }
    free(l->paths);
    free(l->files);
    if (l->df)
        fl_datafile_close(l->df);
    memset(l, 0, sizeof *l);
}

fl_code fl_image_list_read(fl_image_list *l, int64_t first, int64_t count, int channels, int height, int width,
                           uint8_t *chw, int *bad, fl_error *bad_err, fl_error *err)
{
    size_t bytes = (size_t)channels * height * width;
    if (l->kind == FL_INPUT_DATAFILE) {
        if (channels != l->channels || height != l->height || width != l->width)
            return fl_fail(err, FL_EINPUT,
                           "%s: a size mismatch: the data file holds %dx%d images of %d channel%s, the run's model "
                           "needs %dx%d of %d HINT: prep the images at the run's size (foldline prep SRC OUT.h5 --size "
                           "%dx%d --channels %d), or give the folder of images or a CSV: predict resizes those itself",
                           l->source, l->height, l->width, l->channels, l->channels == 1 ? "" : "s", height, width,
                           channels, height, width, channels);
        for (int64_t i = 0; bad && i < count; i++)
            bad[i] = 0;
        if (count == 0)
            return FL_OK;
        return fl_datafile_read_images(l->df, FL_SPLIT_TEST, first, count, chw, err);
    }
    for (int64_t i = 0; i < count; i++) {
        uint8_t *dst = chw + (size_t)i * bytes;
        fl_image img;
        fl_error e;
        fl_error_clear(&e);
        fl_code rc = fl_image_decode_file(l->files[first + i], channels, &img, &e);
        if (!rc) {
            rc = fl_image_fit(&img, height, width, dst, &e);
            fl_image_release(&img);
        }
        if (rc && (rc == FL_ENOMEM || !bad)) {
            *err = e;
            return rc;
        }
        if (bad)
            bad[i] = rc != FL_OK;
        if (rc) {
            memset(dst, 0, bytes);
            if (bad_err)
                bad_err[i] = e;
        }
    }
    return FL_OK;
}
