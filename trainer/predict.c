/* predict.c -- see predict.h. */
#include "trainer/predict.h"

#include <stdlib.h>
#include <string.h>

struct fl_predictor {
    const fl_run *run;
    fl_model *folds[FL_MAX_MODELS][FL_MAX_FOLDS];
    int batch_cap;  /* rows of the buffers below */
    float *feats;   /* (1 + FL_MAX_TTA) x (batch_cap, D) of a frozen model */
    size_t feats_n; /* floats in feats */
    float *probs;   /* (batch_cap, C) */
};

static fl_code predictor_fold_new(fl_predictor *p, int m, int i, const char *device, fl_error *err)
{
    const fl_run_model *rm = &p->run->models[m];
    fl_model_spec spec = {0};
    spec.backbone = rm->backbone;
    spec.in_channels = rm->channels;
    spec.height = rm->height;
    spec.width = rm->width;
    spec.num_classes = rm->num_classes;
    spec.head_type = rm->head_type;
    spec.head_hidden = rm->head_hidden;
    spec.head_act = rm->head_act;
    spec.freeze_backbone = rm->frozen;
    spec.backbone_lr_scale = rm->backbone_lr_scale;
    spec.optimizer = rm->optimizer;
    spec.lr = 1e-3; /* no step is taken: the optimizer is only what the checkpoint's signature names */
    memcpy(spec.mean, rm->mean, sizeof spec.mean);
    memcpy(spec.std, rm->std, sizeof spec.std);
    spec.seed = 1;    /* every tensor but a frozen backbone's comes from the checkpoint */
    if (rm->frozen) { /* the folds share the backbone, drawn as the trainer drew it */
        spec.backbone_seed = rm->backbone_seed;
        spec.backbone_of = i ? p->folds[m][0] : NULL;
    }
    spec.device = device;
    fl_code rc = fl_model_new(&spec, &p->folds[m][i], err);
    if (rc)
        return fl_error_prefix(err, "model %s", rm->name);
    char path[FL_PATH_MAX + 256];
    fl_run_checkpoint(p->run, m, i, path, sizeof path);
    rc = fl_model_load_weights(p->folds[m][i], path, err);
    return rc ? fl_error_prefix(err, "%s", path) : FL_OK;
}

fl_code fl_predictor_new(const fl_run *run, const char *device, fl_predictor **out, fl_error *err)
{
    fl_predictor *p = calloc(1, sizeof *p);
    if (!p)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    p->run = run;
    *out = p;
    int64_t feats = 0;
    fl_code rc = FL_OK;
    for (int m = 0; !rc && m < run->n_models; m++) {
        for (int i = 0; !rc && i < run->man.n_folds; i++)
            rc = predictor_fold_new(p, m, i, device, err);
        if (rc)
            break;
        const fl_run_model *rm = &run->models[m];
        if (rm->batch > p->batch_cap)
            p->batch_cap = rm->batch;
        int dim = fl_model_feature_dim(p->folds[m][0]);
        if (dim < 1) {
            rc = fl_fail(err, FL_EINTERNAL, "model %s: cannot read its backbone's feature width", rm->name);
            break;
        }
        int64_t f = (int64_t)dim * (1 + rm->n_tta);
        if (rm->frozen && f > feats)
            feats = f;
    }
    if (!rc) {
        p->feats_n = (size_t)feats * (size_t)p->batch_cap;
        p->feats = malloc(sizeof *p->feats * (p->feats_n ? p->feats_n : 1));
        p->probs = malloc(sizeof *p->probs * (size_t)p->batch_cap * (size_t)run->num_classes);
        if (!p->feats || !p->probs)
            rc = fl_fail(err, FL_ENOMEM, "out of memory for predictions");
    }
    if (rc) {
        fl_predictor_free(p);
        *out = NULL;
    }
    return rc;
}

void fl_predictor_free(fl_predictor *p)
{
    if (!p)
        return;
    for (int m = 0; m < FL_MAX_MODELS; m++)
        for (int i = FL_MAX_FOLDS - 1; i >= 0; i--) /* heads before the fold whose backbone they share */
            fl_model_free(p->folds[m][i]);
    free(p->feats);
    free(p->probs);
    free(p);
}

fl_model *fl_predictor_fold(const fl_predictor *p, int m, int i)
{
    return p->folds[m][i];
}

/* Rows of (B, C) probabilities into fold i's columns of out. */
static void predictor_scatter(const float *probs, int B, int C, int i, float *out, int64_t stride)
{
    for (int r = 0; r < B; r++)
        memcpy(out + (size_t)r * stride + (size_t)i * C, probs + (size_t)r * C, sizeof *probs * (size_t)C);
}

fl_code fl_predictor_model(fl_predictor *p, int m, const uint8_t *x, int B, float *out, int64_t stride, fl_error *err)
{
    const fl_run_model *rm = &p->run->models[m];
    const int C = p->run->num_classes, F = p->run->man.n_folds;
    if (B < 1 || B > p->batch_cap)
        return fl_fail(err, FL_EINTERNAL, "predict: a batch of %d images (at most %d)", B, p->batch_cap);
    fl_code rc = FL_OK;
    if (!rm->frozen) {
        for (int i = 0; !rc && i < F; i++) {
            rc = fl_model_predict(p->folds[m][i], x, B, rm->tta, rm->n_tta, NULL, p->probs, NULL, NULL, err);
            if (!rc)
                predictor_scatter(p->probs, B, C, i, out, stride);
        }
        return rc;
    }
    /* The shared backbone's features of each view once, then every head. */
    const size_t D = (size_t)fl_model_feature_dim(p->folds[m][0]);
    const float *views[1 + FL_MAX_TTA];
    for (int t = 0; !rc && t <= rm->n_tta; t++) {
        float *v = p->feats + (size_t)t * D * (size_t)B;
        rc = fl_model_embed(p->folds[m][0], x, B, NULL, t ? rm->tta[t - 1] : -1, v, err);
        views[t] = v;
    }
    for (int i = 0; !rc && i < F; i++) {
        rc = fl_model_head_predict(p->folds[m][i], views, 1 + rm->n_tta, B, NULL, p->probs, NULL, NULL, err);
        if (!rc)
            predictor_scatter(p->probs, B, C, i, out, stride);
    }
    return rc;
}
