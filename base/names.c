/* names.c -- see names.h. The one place each closed set's names are spelled. */
#include "base/names.h"

#include <stdio.h>
#include <string.h>

const char *const fl_head_names[] = {"linear", "mlp3", NULL};
const char *const fl_act_names[] = {"relu", "gelu", NULL};
const char *const fl_optim_names[] = {"adam", "adamw", "sgd", NULL};
const char *const fl_sched_names[] = {"none", "step", "cosine", "onecycle", NULL};
const char *const fl_predict_with_names[] = {"best_acc", "best_loss", "last", NULL};
const char *const fl_precision_names[] = {"fp32", "bf16", "fp16", NULL};
const char *const fl_on_nan_names[] = {"stop", "skip_step", NULL};
const char *const fl_data_cache_names[] = {"none", "memory", NULL};
const char *const fl_data_verify_names[] = {"full", "open", NULL};
const char *const fl_feature_cache_names[] = {"auto", "memory", "file", "none", "device", NULL};
const char *const fl_dist_backend_names[] = {"auto", "nccl", "mpi", NULL};
const char *const fl_vote_method_names[] = {"soft-soft", "soft-hard", "hard-hard", "soft", "hard", NULL};
const char *const fl_fit_metric_names[] = {"logloss", "acc", NULL};
const char *const fl_backbone_names[] = {"resnet18", "resnet34", "resnet50", "smallcnn", "smallresnet", "mlp", NULL};

int fl_name_find(const char *const *names, const char *name)
{
    for (int i = 0; name && names[i]; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

const char *fl_name_of(const char *const *names, int v)
{
    for (int i = 0; v >= 0 && names[i]; i++)
        if (i == v)
            return names[i];
    return "?";
}

char *fl_names_join(char *buf, size_t cap, const char *const *names, const int *order, int n, const char *quote,
                    const char *sep, const char *last_sep)
{
    size_t len = 0;
    if (!order)
        for (n = 0; names[n]; n++) {
        }
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < n && len < cap; i++) {
        const char *s = i == 0 ? "" : i == n - 1 ? last_sep : sep;
        int w = snprintf(buf + len, cap - len, "%s%s%s%s", s, quote, fl_name_of(names, order ? order[i] : i), quote);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf;
}

char *fl_vote_method_list(char *buf, size_t cap)
{
    static const int order[] = {FL_VOTE_SOFT, FL_VOTE_HARD, FL_VOTE_SOFT_SOFT, FL_VOTE_SOFT_HARD, FL_VOTE_HARD_HARD};
    return fl_names_join(buf, cap, fl_vote_method_names, order, (int)(sizeof order / sizeof *order), "", ", ", " or ");
}

int fl_vote_method_per_model(fl_vote_method m)
{
    return m == FL_VOTE_SOFT || m == FL_VOTE_HARD;
}
