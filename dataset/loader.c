/* loader.c -- see loader.h. A ring of RING batch buffers: the prefetch
 * thread fills slot (b % RING) for batch b while the consumer holds at most
 * one slot; a slot is free again when the consumer asks for the next batch. */
#include "dataset/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "dataset/h5util.h"

#define RING 3

struct fl_loader {
    fl_datafile *df;
    fl_split_id split;
    size_t image_bytes;
    int64_t n_split;
    uint8_t *cache; /* whole split, or NULL */

    int64_t *rows, n, batch_cap; /* batch_cap: images a slot holds */
    int batch;
    int64_t *ends;       /* fl_loader_start_batches: where each batch ends, else NULL */
    int shard, n_shards; /* which part of every batch this loader reads */
    int64_t n_batches;
    uint8_t *slot[RING];

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t filled;   /* batches ready (producer) */
    int64_t consumed; /* batches the consumer has taken */
    int64_t epoch;    /* bumps on every start */
    int stop, failed;
    int busy; /* the thread is reading outside the lock */
    fl_error err;
    double wait_s;
};

/* Reads rows[first .. first+count) into dst. Runs of consecutive rows are
 * read with one call. */
static fl_code loader_read(fl_loader *ld, const int64_t *rows, int count, uint8_t *dst, fl_error *err)
{
    for (int i = 0; i < count;) {
        int j = i + 1;
        while (j < count && rows[j] == rows[j - 1] + 1)
            j++;
        if (ld->cache) {
            memcpy(dst + (size_t)i * ld->image_bytes, ld->cache + (size_t)rows[i] * ld->image_bytes,
                   (size_t)(j - i) * ld->image_bytes);
        } else {
            fl_h5_lock();
            fl_code rc =
                fl_datafile_read_images(ld->df, ld->split, rows[i], j - i, dst + (size_t)i * ld->image_bytes, err);
            fl_h5_unlock();
            if (rc)
                return rc;
        }
        i = j;
    }
    return FL_OK;
}

/* Position and size of this loader's shard of batch b (under the lock). */
static void loader_shard_of(const fl_loader *ld, int64_t b, int64_t *first, int *count)
{
    int64_t lo, len;
    if (ld->ends) {
        lo = b ? ld->ends[b - 1] : 0;
        len = ld->ends[b] - lo;
    } else {
        lo = b * ld->batch;
        len = ld->n - lo < ld->batch ? ld->n - lo : ld->batch;
    }
    *first = lo + len * ld->shard / ld->n_shards;
    *count = (int)(lo + len * (ld->shard + 1) / ld->n_shards - *first);
}

static void *loader_thread(void *arg)
{
    fl_loader *ld = arg;
    fl_h5_quiet(); /* HDF5's error printing is per thread: foldline reports errors itself */
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        /* Wait for work: an epoch with batches left and a free slot. */
        while (!ld->stop && (ld->failed || ld->filled >= ld->n_batches || ld->filled >= ld->consumed + RING - 1))
            pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->stop)
            break;
        int64_t b = ld->filled, epoch = ld->epoch, first;
        int count;
        loader_shard_of(ld, b, &first, &count);
        uint8_t *dst = ld->slot[b % RING];
        const int64_t *rows = ld->rows + first;
        ld->busy = 1;
        pthread_mutex_unlock(&ld->mu);
        fl_error err;
        fl_code rc = loader_read(ld, rows, count, dst, &err);
        pthread_mutex_lock(&ld->mu);
        ld->busy = 0;
        pthread_cond_broadcast(&ld->cv);
        if (epoch != ld->epoch)
            continue; /* restarted meanwhile: drop this batch */
        if (rc) {
            ld->failed = 1;
            ld->err = err;
        } else {
            ld->filled++;
        }
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

fl_code fl_loader_open(const char *path, fl_split_id split, int cache_memory, fl_loader **out, fl_error *err)
{
    *out = NULL;
    fl_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = fl_datafile_open(path, &ld->df, err);
    if (rc) {
        free(ld);
        return rc;
    }
    const fl_data_info *in = fl_datafile_info(ld->df);
    ld->split = split;
    ld->image_bytes = (size_t)in->channels * in->height * in->width;
    ld->n_split = split == FL_SPLIT_TRAIN ? in->n_train : in->n_test;
    if (cache_memory && ld->n_split > 0) {
        ld->cache = malloc(ld->image_bytes * (size_t)ld->n_split);
        if (!ld->cache) {
            rc = fl_fail(err, FL_ENOMEM,
                         "%s: cannot hold the %s images in memory (%zu MB) HINT: set data.cache = \"none\"", path,
                         split == FL_SPLIT_TRAIN ? "train" : "test", ld->image_bytes * (size_t)ld->n_split >> 20);
            goto fail;
        }
        /* In slices, so that one read never needs a second full-size buffer. */
        for (int64_t r = 0; r < ld->n_split && !rc; r += 4096) {
            int64_t c = ld->n_split - r < 4096 ? ld->n_split - r : 4096;
            rc = fl_datafile_read_images(ld->df, split, r, c, ld->cache + (size_t)r * ld->image_bytes, err);
        }
        if (rc)
            goto fail;
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    if (pthread_create(&ld->thread, NULL, loader_thread, ld) != 0) {
        rc = fl_fail(err, FL_EIO, "cannot start the prefetch thread");
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv);
        goto fail;
    }
    ld->thread_started = 1;
    *out = ld;
    return FL_OK;
fail:
    free(ld->cache);
    fl_datafile_close(ld->df);
    free(ld);
    return rc;
}

void fl_loader_close(fl_loader *ld)
{
    if (!ld)
        return;
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv);
    }
    for (int i = 0; i < RING; i++)
        free(ld->slot[i]);
    free(ld->rows);
    free(ld->ends);
    free(ld->cache);
    fl_datafile_close(ld->df);
    free(ld);
}

fl_code fl_loader_start(fl_loader *ld, const int64_t *rows, int64_t n, int batch, fl_error *err)
{
    return fl_loader_start_shard(ld, rows, n, batch, 0, 1, err);
}

/* The batches of rows, ends[b] where batch b ends (ends NULL: every `batch`
 * rows), this loader reading shard `shard` of n_shards of each. */
static fl_code loader_start(fl_loader *ld, const int64_t *rows, int64_t n, int batch, const int64_t *ends,
                            int64_t n_batches, int shard, int n_shards, fl_error *err)
{
    if (n_shards < 1 || shard < 0 || shard >= n_shards || (!ends && batch < 1))
        return fl_fail(err, FL_EINTERNAL, "loader: batch %d, shard %d of %d", batch, shard, n_shards);
    int64_t widest = ends ? 0 : batch;
    for (int64_t b = 0; ends && b < n_batches; b++) {
        int64_t lo = b ? ends[b - 1] : 0;
        if (ends[b] < lo || ends[b] > n || (b == n_batches - 1 && ends[b] != n))
            return fl_fail(err, FL_EINTERNAL, "loader: batch %lld ends at %lld of %lld rows", (long long)b,
                           (long long)ends[b], (long long)n);
        if (ends[b] - lo > widest)
            widest = ends[b] - lo;
    }
    /* The largest shard of a batch: ceil(widest / n_shards) images. */
    int cap = (int)((widest + n_shards - 1) / n_shards);
    for (int64_t i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= ld->n_split)
            return fl_fail(err, FL_EINTERNAL, "loader: row %lld outside 0..%lld", (long long)rows[i],
                           (long long)ld->n_split - 1);
    pthread_mutex_lock(&ld->mu);
    ld->epoch++;     /* the thread drops whatever it is reading */
    while (ld->busy) /* buffers and rows are about to change */
        pthread_cond_wait(&ld->cv, &ld->mu);
    fl_code rc = FL_OK;
    int64_t *nr = realloc(ld->rows, sizeof *nr * (size_t)(n ? n : 1));
    if (!nr)
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
    else
        ld->rows = nr;
    free(ld->ends);
    ld->ends = NULL;
    if (!rc && ends && !(ld->ends = malloc(sizeof *ends * (size_t)(n_batches ? n_batches : 1))))
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
    if (!rc && cap > ld->batch_cap) {
        for (int i = 0; i < RING && !rc; i++) {
            uint8_t *s = realloc(ld->slot[i], ld->image_bytes * (size_t)cap);
            if (!s)
                rc = fl_fail(err, FL_ENOMEM, "out of memory for batch buffers");
            else
                ld->slot[i] = s;
        }
        if (!rc)
            ld->batch_cap = cap;
    }
    if (!rc) {
        memcpy(ld->rows, rows, sizeof *rows * (size_t)n);
        if (ends)
            memcpy(ld->ends, ends, sizeof *ends * (size_t)n_batches);
        ld->n = n;
        ld->batch = batch;
        ld->shard = shard;
        ld->n_shards = n_shards;
        ld->n_batches = ends ? n_batches : (n + batch - 1) / batch;
        ld->filled = ld->consumed = 0;
        ld->failed = 0;
        ld->wait_s = 0;
    } else {
        ld->n = ld->n_batches = 0;
    }
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    return rc;
}

fl_code fl_loader_start_shard(fl_loader *ld, const int64_t *rows, int64_t n, int batch, int shard, int n_shards,
                              fl_error *err)
{
    return loader_start(ld, rows, n, batch, NULL, 0, shard, n_shards, err);
}

fl_code fl_loader_start_batches(fl_loader *ld, const int64_t *rows, int64_t n, const int64_t *ends, int64_t n_batches,
                                int shard, int n_shards, fl_error *err)
{
    if (!ends && n_batches)
        return fl_fail(err, FL_EINTERNAL, "loader: %lld batches without their ends", (long long)n_batches);
    if (n_batches == 0 && n != 0)
        return fl_fail(err, FL_EINTERNAL, "loader: %lld rows in no batch", (long long)n);
    return loader_start(ld, rows, n, 1, ends ? ends : (const int64_t[]){0}, n_batches, shard, n_shards, err);
}

int fl_loader_next(fl_loader *ld, const uint8_t **x, int *B, int64_t *first, fl_error *err)
{
    double t0 = fl_clock_mono();
    pthread_mutex_lock(&ld->mu);
    /* Taking batch b frees the slot of batch b-1 (the consumer is done with it). */
    int64_t b = ld->consumed;
    if (b >= ld->n_batches) {
        pthread_mutex_unlock(&ld->mu);
        return 0;
    }
    pthread_cond_broadcast(&ld->cv);
    while (!ld->failed && ld->filled <= b)
        pthread_cond_wait(&ld->cv, &ld->mu);
    if (ld->failed) {
        *err = ld->err;
        pthread_mutex_unlock(&ld->mu);
        return -1;
    }
    ld->consumed = b + 1;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    *x = ld->slot[b % RING];
    loader_shard_of(ld, b, first, B);
    ld->wait_s += fl_clock_mono() - t0;
    return 1;
}

double fl_loader_wait_seconds(const fl_loader *ld)
{
    return ld->wait_s;
}
