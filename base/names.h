/* names.h -- the closed sets of a run's settings (head, optimizer, schedule,
 * predict_with, precision, run.on_nan, data.cache, data.verify,
 * data.feature_cache, dist.backend, the vote methods, vote --fit-metric, the
 * built-in backbones)
 * as enums, each with the one table of its names.
 *
 * The config loader parses with these tables, settings.txt, run.cfg and the
 * reports print with them, the libtorch bridge (C++, same header) checks its
 * spec's strings against them, and error messages that list the valid values
 * are made from them (fl_names_join). Each enum's first value is its default.
 */
#ifndef FOLDLINE_NAMES_H
#define FOLDLINE_NAMES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { FL_HEAD_LINEAR, FL_HEAD_MLP3, FL_HEAD_COUNT } fl_head;
typedef enum { FL_ACT_RELU, FL_ACT_GELU, FL_ACT_COUNT } fl_act;
typedef enum { FL_OPTIM_ADAM, FL_OPTIM_ADAMW, FL_OPTIM_SGD, FL_OPTIM_COUNT } fl_optim;
typedef enum { FL_SCHED_NONE, FL_SCHED_STEP, FL_SCHED_COSINE, FL_SCHED_ONECYCLE, FL_SCHED_COUNT } fl_sched;
typedef enum { FL_PREDICT_BEST_ACC, FL_PREDICT_BEST_LOSS, FL_PREDICT_LAST, FL_PREDICT_COUNT } fl_predict_with;
typedef enum { FL_PRECISION_FP32, FL_PRECISION_BF16, FL_PRECISION_FP16, FL_PRECISION_COUNT } fl_precision;
typedef enum { FL_ON_NAN_STOP, FL_ON_NAN_SKIP_STEP, FL_ON_NAN_COUNT } fl_on_nan;
typedef enum { FL_DATA_CACHE_NONE, FL_DATA_CACHE_MEMORY, FL_DATA_CACHE_COUNT } fl_data_cache;
typedef enum { FL_VERIFY_FULL, FL_VERIFY_OPEN, FL_VERIFY_COUNT } fl_data_verify;
typedef enum {
    FL_FCACHE_AUTO,
    FL_FCACHE_MEMORY,
    FL_FCACHE_FILE,
    FL_FCACHE_NONE,
    FL_FCACHE_DEVICE,
    FL_FCACHE_COUNT
} fl_feature_cache;
/* dist.backend as configured (dist/group.h's fl_backend is the one in use) */
typedef enum { FL_DIST_AUTO, FL_DIST_NCCL, FL_DIST_MPI, FL_DIST_COUNT } fl_dist_backend;
typedef enum {
    FL_VOTE_SOFT_SOFT,
    FL_VOTE_SOFT_HARD,
    FL_VOTE_HARD_HARD,
    FL_VOTE_SOFT, /* within one model */
    FL_VOTE_HARD, /* within one model */
    FL_VOTE_COUNT
} fl_vote_method;
/* vote --fit-metric: what the greedy weight fit optimises */
typedef enum { FL_FIT_LOGLOSS, FL_FIT_ACC, FL_FIT_COUNT } fl_fit_metric;
/* The built-in backbones (models.[i].backbone other than "torchscript:PATH"). */
typedef enum {
    FL_NET_RESNET18,
    FL_NET_RESNET34,
    FL_NET_RESNET50,
    FL_NET_SMALLCNN,
    FL_NET_SMALLRESNET,
    FL_NET_MLP,
    FL_NET_COUNT
} fl_backbone;

/* The name tables, NULL-terminated, in enum order. */
extern const char *const fl_head_names[];
extern const char *const fl_act_names[];
extern const char *const fl_optim_names[];
extern const char *const fl_sched_names[];
extern const char *const fl_predict_with_names[];
extern const char *const fl_precision_names[];
extern const char *const fl_on_nan_names[];
extern const char *const fl_data_cache_names[];
extern const char *const fl_data_verify_names[];
extern const char *const fl_feature_cache_names[];
extern const char *const fl_dist_backend_names[];
extern const char *const fl_vote_method_names[];
extern const char *const fl_fit_metric_names[];
extern const char *const fl_backbone_names[];

/* The index of name in the NULL-terminated table names, -1 when absent. */
int fl_name_find(const char *const *names, const char *name);

/* names[v], or "?" when v is out of range (v < 0 or past the table). */
const char *fl_name_of(const char *const *names, int v);

/* The names joined into buf: each between quote (e.g. "" or "\""), separated
 * by sep, the last one by last_sep (e.g. ", " and " or "; or " | " twice).
 * order (n indices) picks and orders the names; NULL: the whole table. buf is
 * always terminated (truncated when short); returns buf. */
char *fl_names_join(char *buf, size_t cap, const char *const *names, const int *order, int n, const char *quote,
                    const char *sep, const char *last_sep);

/* T_name(v): v's name ("?" out of range); T_parse(s): s's value, -1 when s is
 * not one of the names (NULL included). */
#define FL_NAMES_FUNCS(T)                                                                                              \
    static inline const char *T##_name(T v)                                                                            \
    {                                                                                                                  \
        return fl_name_of(T##_names, (int)v);                                                                          \
    }                                                                                                                  \
    static inline int T##_parse(const char *s)                                                                         \
    {                                                                                                                  \
        return fl_name_find(T##_names, s);                                                                             \
    }
FL_NAMES_FUNCS(fl_head)
FL_NAMES_FUNCS(fl_act)
FL_NAMES_FUNCS(fl_optim)
FL_NAMES_FUNCS(fl_sched)
FL_NAMES_FUNCS(fl_predict_with)
FL_NAMES_FUNCS(fl_precision)
FL_NAMES_FUNCS(fl_on_nan)
FL_NAMES_FUNCS(fl_data_cache)
FL_NAMES_FUNCS(fl_data_verify)
FL_NAMES_FUNCS(fl_feature_cache)
FL_NAMES_FUNCS(fl_fit_metric)
FL_NAMES_FUNCS(fl_dist_backend)
FL_NAMES_FUNCS(fl_vote_method)
FL_NAMES_FUNCS(fl_backbone)

/* The vote methods as messages list them: "soft, hard, soft-soft, soft-hard
 * or hard-hard" (the per-model ones first); returns buf. */
char *fl_vote_method_list(char *buf, size_t cap);

/* fl_vote_method_per_model: 1 for soft and hard, which vote within one model. */
int fl_vote_method_per_model(fl_vote_method m);

#ifdef __cplusplus
}
#endif

#endif
