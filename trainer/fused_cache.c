/* fused_cache.c -- a fused job's frozen features: the backbone's embedding of
 * a batch, and the feature cache (data.feature_cache: memory, a file beside
 * the data or in run.scratch_dir, or the device) filled once and read by every
 * epoch whose augmentation leaves the images as they are. See fused.c. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/stop.h"
#include "dataset/featcache.h"
#include "trainer/augment.h"
#include "trainer/fused_internal.h"

/* The features (B, D) of images x into out, with the training augmentation
 * aug or the test-time view (-1: plain); nothing for an empty shard. */
fl_code fused_embed(fused_state *f, const uint8_t *x, int B, const fl_augment *aug, int view, float *out, fl_error *err)
{
    f->embedded += B;
    return B ? fl_model_embed(f->models[0], x, B, aug, view, out, err) : FL_OK;
}

/* ---- the feature cache ------------------------------------------------------ */

/* Fills the cache with the plain features of rows (n, ascending): each rank
 * embeds its shard of every batch, the leader gathers them and sends the
 * whole batch to every rank, so each holds every row. */
static fl_code fused_cache_fill(fused_state *f, const int64_t *rows, int64_t n, fl_error *err)
{
    int64_t chunk = f->cap * f->g_size;
    float *all = malloc(sizeof *all * (size_t)chunk * f->D);
    if (!all)
        return fused_oom(err);
    fl_loader *ld = f->data->train_loader;
    fl_code rc = fl_loader_start_shard(ld, rows, n, (int)chunk, f->g_rank, f->g_size, err);
    if (!rc && f->dev_cache) /* the rows once: a batch's are a slice of them */
        rc = fl_devpath_epoch(f->dev, rows, n, NULL, NULL, NULL, NULL, err);
    const uint8_t *x;
    int B, got = 0;
    int64_t first, pos = 0;
    while (!rc && (got = fl_loader_next(ld, &x, &B, &first, err)) == 1) {
        int64_t len = n - pos < chunk ? n - pos : chunk;
        if (f->dev_cache) { /* on the device */
            rc = fused_dev_fill_batch(f, x, B, rows, pos, len, all, err);
            pos += len;
            fl_group_progress(f->env->group);
            continue;
        }
        rc = fused_embed(f, x, B, NULL, -1, f->feats, err);
        if (!rc && f->g_size > 1) {
            rc = fl_group_gather_rows(f->group, f->feats, all, len, f->D, err);
            if (!rc)
                rc = fl_group_bcast_host(f->group, all, sizeof *all * (size_t)len * f->D, err);
        } else if (!rc) {
            memcpy(all, f->feats, sizeof *all * (size_t)len * f->D);
        }
        for (int64_t i = 0; i < len && !rc; i++) { /* runs of consecutive rows in one put */
            int64_t j = i + 1;
            while (j < len && rows[pos + j] == rows[pos + j - 1] + 1)
                j++;
            rc = fl_featcache_put(f->cache, rows[pos + i], j - i, all + (size_t)i * f->D, err);
            for (int64_t k = i; k < j; k++)
                f->cached[rows[pos + k]] = 1;
            i = j - 1;
        }
        pos += len;
        fl_group_progress(f->env->group);
    }
    if (!rc && got < 0)
        rc = err->code;
    free(all);
    return rc;
}

/* The scratch file of a cache that does not fit in memory: on node-local
 * storage (run.scratch_dir, else $SLURM_TMPDIR, else $TMPDIR, else /tmp),
 * never in the shared run directory unless run.scratch_dir names it: every
 * rank rewrites its cache there, and a shared filesystem is the slowest
 * place for that. The name holds a hash of the run directory, so two runs on
 * one node never share a file, and a killed run's file is reused by its
 * rerun. */
static void fused_cache_path(const fused_state *f, char *path, size_t n)
{
    const char *dir = f->env->cfg->scratch_dir;
    if (!*dir)
        dir = getenv("SLURM_TMPDIR");
    if (!dir || !*dir)
        dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char real[PATH_MAX];
    const char *run = realpath(f->env->run_dir, real) ? real : f->env->run_dir;
    snprintf(path, n, "%s/foldline-%016llx-%s-features-g%d-r%d.h5", dir, (unsigned long long)fl_hash_str(run),
             f->mc->name, f->group ? fl_group_index(f->group) : 0, f->g_rank);
}

/* Opens the cache as data.feature_cache says and fills it with the rows the
 * rest of the job reads un-augmented: every row when an epoch still to come
 * has no augmentation, else the heads' validation rows. */
fl_code fused_cache_open(fused_state *f, int first_epoch, fl_error *err)
{
    const fl_train_config *cfg = f->env->cfg;
    if (cfg->feature_cache == FL_FCACHE_NONE)
        return FL_OK;
    double mb = (double)f->N * f->D * sizeof(float) / (1 << 20);
    int in_file =
        cfg->feature_cache == FL_FCACHE_FILE || (cfg->feature_cache == FL_FCACHE_AUTO && mb > cfg->feature_cache_mb);
    /* "device": one (N, D) tensor on the model's device, in the features'
     * dtype (fused_dev_open); "memory" when it does not fit. */
    int device = f->dev_cache;
    char path[4200];
    fused_cache_path(f, path, sizeof path);
    fl_code rc = device ? FL_OK : fl_featcache_open(in_file ? path : NULL, f->N, f->D, &f->cache, err);
    if (rc)
        return rc;
    if (!(f->cached = calloc((size_t)(f->N ? f->N : 1), 1)))
        return fused_oom(err);
    int all_rows = 0;
    for (int e = first_epoch; e < f->mc->epochs && !all_rows; e++) {
        const fl_aug_stage *st = fl_augment_stage_at(f->mc, e);
        all_rows = !st || st->n_ops == 0;
    }
    int64_t *rows = malloc(sizeof *rows * (size_t)(f->N ? f->N : 1)), n = 0;
    if (!rows)
        return fused_oom(err);
    for (int64_t r = 0; r < f->N; r++)
        if (all_rows || f->head_of_fold[f->env->train_fold[r]] >= 0)
            rows[n++] = r;
    double t0 = job_now_s();
    rc = fused_cache_fill(f, rows, n, err);
    free(rows);
    if (!rc && f->log && device) {
        fprintf(f->log,
                "[%s] feature cache: %lld of %lld train rows x %d features (%.0f MB, %s) on the device %s, computed "
                "in %.1f s\n",
                f->mc->name, (long long)n, (long long)f->N, f->D, (double)fl_devpath_cache_bytes(f->dev) / (1 << 20),
                fl_devpath_cache_dtype(f->dev), fl_devpath_device(f->dev), job_now_s() - t0);
        fflush(f->log);
    } else if (!rc && f->log) {
        fprintf(f->log,
                "[%s] feature cache: %lld of %lld train rows x %d features (%.0f MB) %s%s, computed in %.1f s\n",
                f->mc->name, (long long)n, (long long)f->N, f->D, (double)n * f->D * sizeof(float) / (1 << 20),
                in_file ? "in the scratch file " : "in memory", in_file ? path : "", job_now_s() - t0);
        fflush(f->log);
    }
    return rc;
}

/* 1 if every one of rows (n) is in the cache. */
int fused_all_cached(const fused_state *f, const int64_t *rows, int64_t n)
{
    if (!f->cache && !f->dev_cache)
        return 0;
    for (int64_t i = 0; i < n; i++)
        if (!f->cached[rows[i]])
            return 0;
    return 1;
}

/* ---- training ---------------------------------------------------------------- */
