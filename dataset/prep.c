/* prep.c -- see prep.h. */
#include "dataset/prep.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "dataset/datafile.h"
#include "dataset/folds.h"
#include "dataset/image.h"
#include "dataset/source.h"
#include "base/outpath.h"
#include "base/tempfile.h"
#include "base/cores.h"

#define BLOCK_BYTES    (64u << 20) /* one of the two image buffers, at most */
#define BLOCK_ROWS_MAX 512

/* Work shared by the writer (calling thread) and the decode workers. Rows of
 * both splits are numbered as one sequence: train rows, then test rows. Row r
 * belongs to block r / block_rows and lands in buf[block % 2]. */
typedef struct {
    const fl_source *src;
    int channels, height, width;
    int64_t n_rows, n_train, block_rows, n_blocks;
    size_t image_bytes;
    uint8_t *buf[2];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next_row;       /* next row to hand to a worker */
    int64_t blocks_written; /* blocks the writer has finished with */
    int64_t done_in[2];     /* rows decoded in the block of each buffer */
    int failed;             /* stop everyone */
    fl_error first_err;     /* the first failure of a worker */
    double t_decode, t_resize;
    void (*progress)(void *ctx, int64_t done, int64_t total); /* fl_prep_options' */
    void *progress_ctx;
} prep_work;

static int64_t block_len(const prep_work *w, int64_t b)
{
    int64_t first = b * w->block_rows, n = w->n_rows - first;
    return n < w->block_rows ? n : w->block_rows;
}

/* Decodes and resizes one row into its slot. */
static fl_code prep_one(prep_work *w, int64_t row, uint8_t *dst, double *t_dec, double *t_res, fl_error *err)
{
    fl_split_id split = row < w->n_train ? FL_SPLIT_TRAIN : FL_SPLIT_TEST;
    int64_t r = split == FL_SPLIT_TRAIN ? row : row - w->n_train;
    fl_image img;
    double t0 = fl_clock_mono();
    fl_code rc = fl_source_decode(w->src, split, r, w->channels, &img, err);
    double t1 = fl_clock_mono();
    *t_dec += t1 - t0;
    if (rc)
        return rc;
    rc = fl_image_fit(&img, w->height, w->width, dst, err);
    fl_image_release(&img);
    *t_res += fl_clock_mono() - t1;
    return rc;
}

static void *prep_worker(void *arg)
{
    prep_work *w = arg;
    double t_dec = 0, t_res = 0;
    fl_error err;
    fl_error_clear(&err);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int64_t row = 0;
        /* The row's buffer is free once the block two back is written. */
        while (!w->failed && (row = w->next_row) < w->n_rows && row / w->block_rows >= w->blocks_written + 2)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->failed || row >= w->n_rows) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->next_row++;
        pthread_mutex_unlock(&w->mu);

        int64_t b = row / w->block_rows;
        uint8_t *dst = w->buf[b % 2] + (size_t)(row - b * w->block_rows) * w->image_bytes;
        fl_code rc = prep_one(w, row, dst, &t_dec, &t_res, &err);

        pthread_mutex_lock(&w->mu);
        if (rc && !w->failed) {
            w->failed = 1;
            w->first_err = err;
        }
        w->done_in[b % 2]++;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    w->t_decode += t_dec;
    w->t_resize += t_res;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The writer loop: waits for each block, writes it, frees its buffer. */
static fl_code prep_write_blocks(prep_work *w, fl_datafile_writer *dw, fl_prep_stats *st, fl_error *err)
{
    for (int64_t b = 0; b < w->n_blocks; b++) {
        int64_t len = block_len(w, b);
        double t0 = fl_clock_mono();
        pthread_mutex_lock(&w->mu);
        while (!w->failed && w->done_in[b % 2] < len) {
            pthread_cond_wait(&w->cv, &w->mu);
            if (w->progress) { /* rows of the blocks written, and of this one so far */
                int64_t done = b * w->block_rows + w->done_in[b % 2];
                pthread_mutex_unlock(&w->mu);
                w->progress(w->progress_ctx, done, w->n_rows);
                pthread_mutex_lock(&w->mu);
            }
        }
        int failed = w->failed;
        pthread_mutex_unlock(&w->mu);
        double t1 = fl_clock_mono();
        st->seconds_wait += t1 - t0;
        if (failed)
            return FL_EINPUT; /* the worker's message is reported by the caller */
        /* A block may straddle the train/test boundary: write each part. */
        int64_t first = b * w->block_rows, end = first + len;
        for (int64_t r = first; r < end;) {
            int is_train = r < w->n_train;
            int64_t stop = is_train && end > w->n_train ? w->n_train : end;
            fl_code rc =
                fl_datafile_write_images(dw, is_train ? FL_SPLIT_TRAIN : FL_SPLIT_TEST, is_train ? r : r - w->n_train,
                                         stop - r, w->buf[b % 2] + (size_t)(r - first) * w->image_bytes, err);
            if (rc)
                return rc;
            r = stop;
        }
        st->seconds_write += fl_clock_mono() - t1;
        pthread_mutex_lock(&w->mu);
        w->done_in[b % 2] = 0;
        w->blocks_written = b + 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    return FL_OK;
}

/* Decodes every row with `threads` workers while this thread writes. */
static fl_code prep_pixels(const fl_prep_options *opt, const fl_source *src, const fl_data_info *info, int threads,
                           fl_datafile_writer *dw, fl_prep_stats *st, fl_error *err)
{
    prep_work w;
    memset(&w, 0, sizeof w);
    w.progress = opt->progress;
    w.progress_ctx = opt->progress_ctx;
    w.src = src;
    w.channels = info->channels;
    w.height = info->height;
    w.width = info->width;
    w.n_train = info->n_train;
    w.n_rows = info->n_train + info->n_test;
    w.image_bytes = (size_t)info->channels * info->height * info->width;
    w.block_rows = BLOCK_BYTES / w.image_bytes;
    if (w.block_rows > BLOCK_ROWS_MAX)
        w.block_rows = BLOCK_ROWS_MAX;
    if (w.block_rows < 1)
        w.block_rows = 1;
    w.n_blocks = (w.n_rows + w.block_rows - 1) / w.block_rows;
    w.buf[0] = malloc(w.image_bytes * w.block_rows);
    w.buf[1] = malloc(w.image_bytes * w.block_rows);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!w.buf[0] || !w.buf[1] || !tid) {
        free(w.buf[0]);
        free(w.buf[1]);
        free(tid);
        return fl_fail(err, FL_ENOMEM, "out of memory for image buffers (%zu bytes)", 2 * w.image_bytes * w.block_rows);
    }
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    fl_error_clear(&w.first_err);
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, prep_worker, &w) != 0)
            break;
    fl_code rc = started ? prep_write_blocks(&w, dw, st, err) : fl_fail(err, FL_EIO, "cannot start decode threads");
    pthread_mutex_lock(&w.mu);
    if (rc)
        w.failed = 1;
    pthread_cond_broadcast(&w.cv);
    pthread_mutex_unlock(&w.mu);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (w.first_err.code) {
        *err = w.first_err;
        rc = w.first_err.code;
    }
    st->seconds_decode = w.t_decode;
    st->seconds_resize = w.t_resize;
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    free(w.buf[0]);
    free(w.buf[1]);
    free(tid);
    return rc;
}

/* Whether the source is grey (IDX, or the first train image has R = G =
 * B): the defaults then write 3 channels at 224x224 (image folders), which
 * the CLI says once. */
static void prep_probe_grey(const fl_source *src, fl_prep_stats *st)
{
    if (src->is_idx) {
        st->grey_source = 1;
        st->grey_h = src->idx[0].rows;
        st->grey_w = src->idx[0].cols;
        return;
    }
    fl_image img = {0};
    fl_error ignored;
    if (src->split[FL_SPLIT_TRAIN].n < 1 || fl_source_decode(src, FL_SPLIT_TRAIN, 0, 3, &img, &ignored))
        return;
    int grey = img.channels == 3;
    for (size_t i = 0; grey && i < (size_t)img.width * img.height; i++)
        grey = img.px[3 * i] == img.px[3 * i + 1] && img.px[3 * i] == img.px[3 * i + 2];
    if (grey) {
        st->grey_source = 1;
        st->grey_h = img.height;
        st->grey_w = img.width;
    }
    fl_image_release(&img);
}

/* The files of SRC that prep reads, which OUT must not be. */
static fl_code prep_not_an_input(const fl_prep_options *opt, const fl_outpath *out, fl_error *err)
{
    static const char *names[] = {"train.csv",
                                  "test.csv",
                                  "classes.txt",
                                  "train-images-idx3-ubyte",
                                  "train-labels-idx1-ubyte",
                                  "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"};
    char path[4200];
    fl_code rc = fl_outpath_not_input(out, opt->classes_file, "the --classes file", err);
    for (size_t i = 0; !rc && i < sizeof names / sizeof *names; i++)
        for (int gz = 0; !rc && gz < 2; gz++) {
            snprintf(path, sizeof path, "%s/%s%s", opt->src_dir, names[i], gz ? ".gz" : "");
            rc = fl_outpath_not_input(out, path, "a file of the source", err);
        }
    return rc;
}

/* OUT resolved and checked, and its temporary file begun: a device, FIFO,
 * socket, directory, one of the source's files, an existing OUT without
 * --force or an unwritable one is refused before minutes of work. A
 * symbolic link to a file replaces that file. */
static fl_code prep_begin_out(const fl_prep_options *opt, fl_tempfile *tmp, fl_error *err)
{
    fl_outpath out;
    fl_code rc = fl_outpath_resolve(&out, opt->out_path, opt->force ? FL_OUTPATH_REPLACE : 0, err);
    if (!rc)
        rc = prep_not_an_input(opt, &out, err);
    if (!rc)
        rc = fl_tempfile_begin(tmp, out.target, 1, err);
    return rc;
}

/* --classes names the classes of IDX sources only: a CSV layout's come from
 * train.csv. */
static fl_code prep_check_classes_option(const fl_prep_options *opt, const fl_source *src, fl_error *err)
{
    if (!opt->classes_file || src->is_idx)
        return FL_OK;
    return fl_fail(err, FL_EUSAGE,
                   "--classes %s: class names come from train.csv's class_name column in a CSV layout; --classes is "
                   "for IDX sources HINT: drop --classes, or name the classes in train.csv",
                   opt->classes_file);
}

/* The data file's header from the source and the options (the size: --size,
 * else the IDX images' own, else 224x224); the shape written into st. */
static void prep_info(const fl_prep_options *opt, const fl_source *src, fl_data_info *info, fl_prep_stats *st)
{
    *info = (fl_data_info){0};
    info->n_train = src->split[FL_SPLIT_TRAIN].n;
    info->n_test = src->split[FL_SPLIT_TEST].n;
    info->num_classes = src->num_classes;
    info->classes = src->classes;
    info->folds = opt->folds;
    info->fold_seed = opt->seed;
    info->channels = opt->channels;
    info->height = opt->height ? opt->height : src->is_idx ? src->idx[0].rows : 224;
    info->width = opt->width ? opt->width : src->is_idx ? src->idx[0].cols : 224;
    info->has_test_labels = src->split[FL_SPLIT_TEST].labels != NULL;
    st->out_h = info->height;
    st->out_w = info->width;
    st->is_idx = src->is_idx;
}

/* The train rows' stratified folds (dataset/folds.h) into *fold (allocated
 * here), once every class has rows enough for them. */
static fl_code prep_folds(const fl_prep_options *opt, const fl_source *src, int64_t n_train, int32_t **fold,
                          fl_error *err)
{
    fl_code rc = fl_source_check_folds(src, opt->folds, err);
    if (rc)
        return rc;
    if (!(*fold = malloc(sizeof **fold * (size_t)(n_train ? n_train : 1))))
        return fl_fail(err, FL_ENOMEM, "out of memory");
    return fl_folds_stratified(src->split[FL_SPLIT_TRAIN].labels, (int)n_train, opt->folds, opt->seed, *fold, err);
}

fl_code fl_prep_run(const fl_prep_options *opt, fl_prep_stats *st, fl_error *err)
{
    memset(st, 0, sizeof *st);
    double t_start = fl_clock_mono();
    if (opt->channels != 1 && opt->channels != 3)
        return fl_fail(err, FL_EUSAGE, "--channels %d: must be 1 or 3", opt->channels);
    if (opt->folds < 2)
        return fl_fail(err, FL_EUSAGE, "--folds %d: must be at least 2", opt->folds);
    fl_tempfile tmp;
    fl_code rc = prep_begin_out(opt, &tmp, err);
    if (rc)
        return rc;
    fl_source src;
    int32_t *fold = NULL;
    fl_datafile_writer *dw = NULL;
    if ((rc = fl_source_load(opt->src_dir, opt->classes_file, &src, err))) {
        fl_tempfile_abort(&tmp);
        return rc;
    }
    if ((rc = prep_check_classes_option(opt, &src, err)))
        goto fail;
    if (!opt->shape_given)
        prep_probe_grey(&src, st);
    fl_data_info info;
    prep_info(opt, &src, &info, st);
    if ((rc = prep_folds(opt, &src, info.n_train, &fold, err)))
        goto fail;
    st->seconds_scan = fl_clock_mono() - t_start;
    if ((rc = fl_datafile_create(tmp.tmp_path, opt->out_path, &info, &dw, err)))
        goto fail;
    for (int s = 0; s < 2 && !rc; s++)
        rc = fl_datafile_write_rows(dw, (fl_split_id)s, src.split[s].labels, s == 0 ? fold : NULL, src.split[s].paths,
                                    err);
    if (rc)
        goto fail;
    st->threads = opt->threads > 0 ? opt->threads : fl_cores_available();
    if ((rc = prep_pixels(opt, &src, &info, st->threads, dw, st, err)))
        goto fail;
    double t0 = fl_clock_mono();
    rc = fl_datafile_finish(dw, err);
    dw = NULL;
    if (rc || (rc = fl_tempfile_commit(&tmp, err)))
        goto fail;
    st->seconds_write += fl_clock_mono() - t0;
    st->n_train = info.n_train;
    st->n_test = info.n_test;
    st->seconds_total = fl_clock_mono() - t_start;
    free(fold);
    fl_source_free(&src);
    return FL_OK;
fail:
    if (dw) {
        fl_error ignored;
        fl_datafile_finish(dw, &ignored);
    }
    fl_tempfile_abort(&tmp);
    free(fold);
    fl_source_free(&src);
    return rc;
}
