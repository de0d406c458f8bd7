/* fused_internal.h -- what the files of a fold-fused job share (trainer/
 * fused.c, its epoch fused_epoch.c, fused_cache.c, fused_predict.c and its
 * device-resident path fused_dev.c): the job's state and the helpers they
 * use. Not an API: only those files include it.
 */
#ifndef FOLDLINE_FUSED_INTERNAL_H
#define FOLDLINE_FUSED_INTERNAL_H

#include <stdio.h>

#include "dataset/featcache.h"
#include "trainer/fused.h"
#include "trainer/job_internal.h"
#include "trainer/order.h"
#include "trainer/torch/devpath.h"

typedef struct {
    const fl_job_env *env;
    const fl_model_cfg *mc;
    const fl_job_data *data;
    int n;                          /* heads */
    job_state *js;                  /* (n) one per fold, in the order given */
    fl_model **models;              /* (n) js[i].model */
    int head_of_fold[FL_MAX_FOLDS]; /* fold -> head index, -1 for a fold without one */
    int K, D, C;                    /* the data file's folds, feature width, classes */
    int64_t N;                      /* train rows */
    fl_group *group;
    int g_rank, g_size, leader;
    FILE *log;
    fl_featcache *cache; /* plain features of the train rows, or NULL */
    fl_devpath *dev;     /* the device-resident path (trainer/torch/devpath.h), or NULL */
    int dev_cache;       /* dev holds the feature cache (instead of cache) */
    int defer;           /* dev's losses are read at intervals, not after every step */
    uint8_t *cached;     /* (N) 1 where the cache holds the row */
    /* Buffers for a rank's shard of a batch (cap rows). */
    int64_t cap;
    float *feats, *sel;           /* (cap, D) */
    float *views[1 + FL_MAX_TTA]; /* (cap, D) each: the test-time views' features */
    float *sel_views[1 + FL_MAX_TTA];
    float *probs;                  /* (cap, C) */
    int32_t *labels;               /* (cap) */
    fl_augment *aug;               /* (cap) */
    int64_t embedded;              /* images (per view) through the backbone on this rank */
    fl_ticker ticker;              /* the fused job's progress line (its heads print none) */
    int first_epoch[FL_MAX_FOLDS]; /* each head's epoch when the job started */
} fused_state;

/* What an epoch of the device path keeps on the host: each head's positions
 * in the epoch's order (the rows outside its fold, uploaded once), the
 * accumulators as last read, the rows trained since, and the slot of the
 * staged batch. */
typedef struct {
    int64_t *pos[FL_MAX_FOLDS], cnt[FL_MAX_FOLDS];
    int64_t a[FL_MAX_FOLDS], b[FL_MAX_FOLDS]; /* this step's positions [a, b) of each head */
    double prev[FL_MAX_FOLDS * 3], dl[FL_MAX_FOLDS], dc[FL_MAX_FOLDS];
    int64_t pend[FL_MAX_FOLDS];
    double last_read;
    int fresh; /* read since the monitor last got the sums */
    int slot;
} fused_dev_epoch;

fl_code fused_oom(fl_error *err);
/* "0,1,2" of the heads' folds, for messages. */
void fused_folds_text(const fused_state *f, char *buf, size_t cap);
/* The rank's contiguous shard [*lo, *hi) of the positions [a, b). */
void fused_shard(const fused_state *f, int64_t a, int64_t b, int64_t *lo, int64_t *hi);

/* Sums the heads' pairs (a[i], b[i]), i < n, over the group in one call (fused.c). */
fl_code fused_sum_pairs(fused_state *f, double *a, double *b, int n, fl_error *err);

/* ---- trainer/fused_epoch.c: one training epoch ------------------------------ */
/* One epoch of every head whose progress is at this epoch (active[i]),
 * each from its own step on. tl, ta, secs: (n) per head. */
fl_code fused_train_epoch(fused_state *f, int epoch, const int *active, double *tl, double *ta, double *secs,
                          fl_error *err);
/* The job's stop: every head's last.pt holds epoch and step. */
fl_code fused_stopped(fused_state *f, int epoch, int64_t step, fl_error *err);

/* ---- trainer/fused_cache.c: the backbone's features and the feature cache ---- */
/* The features (B, D) of images x into out, with the training augmentation
 * aug or the test-time view (-1: plain); nothing for an empty shard. */
fl_code fused_embed(fused_state *f, const uint8_t *x, int B, const fl_augment *aug, int view, float *out,
                    fl_error *err);
/* Opens the cache as data.feature_cache says and fills it with the rows the
 * rest of the job reads un-augmented. */
fl_code fused_cache_open(fused_state *f, int first_epoch, fl_error *err);
/* 1 if every one of rows (n) is in the cache. */
int fused_all_cached(const fused_state *f, const int64_t *rows, int64_t n);

/* ---- trainer/fused_predict.c: validation and the predictions ---------------- */
/* Validation of the active heads, each on its fold: vl, va (n). */
fl_code fused_validate(fused_state *f, const int *active, double *vl, double *va, fl_error *err);
/* Every head loads the checkpoint predict_with names, then predicts its OOF
 * rows and the test set with the test-time views; each writes its preds.h5. */
fl_code fused_predict_all(fused_state *f, fl_error *err);

/* ---- trainer/fused_dev.c ---- */
fl_code fused_dev_open(fused_state *f, fl_error *err);
/* One batch of the device cache's fill: x (B images, this rank's shard of
 * the rows at positions [pos, pos + len) of rows), all: a (len, D) buffer. */
fl_code fused_dev_fill_batch(fused_state *f, const uint8_t *x, int B, const int64_t *rows, int64_t pos, int64_t len,
                             float *all, fl_error *err);
void fused_dev_epoch_free(fused_dev_epoch *dv);
fl_code fused_dev_epoch_start(fused_state *f, const fl_order *o, const double *loss, const double *correct,
                              fused_dev_epoch *dv, fl_error *err);
/* The first of pos (n, ascending) >= v. */
int64_t fused_lower_bound(const int64_t *pos, int64_t n, int64_t v);
fl_code fused_dev_fetch(fused_state *f, const fl_order *o, int64_t s, int *slot, fl_error *err);
int fused_dev_read_due(fused_state *f, const fused_dev_epoch *dv, const int *active);
fl_code fused_dev_read(fused_state *f, fused_dev_epoch *dv, int epoch, int64_t s, double *loss, double *correct,
                       fl_error *err);

#endif
