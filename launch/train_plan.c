/* train_plan.c -- see train_priv.h: where a rank trains (device, threads),
 * which folds and jobs it shares, and the checks that need the data files
 * (a frozen model's batch, every TorchScript backbone's dry run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/nccl.h"
#include "config/config.h"
#include "launch/train_priv.h"
#include "trainer/job.h"
#include "trainer/torch/bridge.h"

/* The device of this rank (its local rank picks the GPU) and the backend of
 * its group's collectives: NCCL when the tensors are on CUDA, else MPI. */
fl_code train_pick_device(train_ctx *t, fl_error *err)
{
    const fl_world *w = &t->world;
    fl_torch_info ti;
    fl_code rc = fl_torch_get_info(&ti, err);
    if (rc)
        return rc;
    t->cuda_device = -1;
    snprintf(t->device, sizeof t->device, "cpu");
    if (ti.cuda_devices > 0) {
        if (w->local_rank >= ti.cuda_devices)
            return fl_fail(err, FL_EINPUT,
                           "host %s: %d ranks run there but it has %d CUDA device%s, so local rank %d has none "
                           "HINT: start at most %d rank%s per host (one per GPU), e.g. mpirun --map-by ppr:%d:node",
                           w->host, w->local_size, ti.cuda_devices, ti.cuda_devices == 1 ? "" : "s", w->local_rank,
                           ti.cuda_devices, ti.cuda_devices == 1 ? "" : "s", ti.cuda_devices);
        t->cuda_device = w->local_rank;
        snprintf(t->device, sizeof t->device, "cuda:%d", w->local_rank);
    }
    int cuda = t->cuda_device >= 0;
    if ((rc = fl_config_check_backend(t->cfg, cuda, fl_nccl_built(), w->host, err)) ||
        (rc = fl_config_check_precision(t->cfg, cuda, w->host, err)))
        return rc;
    const char *b = t->cfg->backend;
    t->backend = !strcmp(b, "nccl") || (!strcmp(b, "auto") && cuda && fl_nccl_built()) ? FL_BACKEND_NCCL : FL_BACKEND_MPI;
    return FL_OK;
}

/* The folds this process trains: every fold of the run, or --fold K alone,
 * which must be one of them (a usage error naming K and the run's folds). */
fl_code train_pick_folds(train_ctx *t, fl_error *err)
{
    if (t->fold_only < 0) {
        t->n_train_folds = t->n_folds;
        memcpy(t->train_folds, t->folds, sizeof *t->folds * (size_t)t->n_folds);
        return FL_OK;
    }
    char list[FL_MAX_FOLDS * 4 + 8] = "";
    size_t len = 0;
    for (int i = 0; i < t->n_folds; i++) {
        if (t->folds[i] == t->fold_only) {
            t->train_folds[0] = t->fold_only;
            t->n_train_folds = 1;
            return FL_OK;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", i ? ", " : "", t->folds[i]);
    }
    return fl_fail(err, FL_EUSAGE,
                   "train: --fold %d is not one of the run's folds (%s: folds.use = [%s]) HINT: pick one of "
                   "them, or leave out --fold to train them all",
                   t->fold_only, t->cfg->path, list);
}

/* A frozen backbone's folds share their batches (trainer/order.h): batch
 * must split evenly over the data file's other folds. */
fl_code train_check_frozen_batches(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    for (int i = 0; i < cfg->n_models; i++) {
        const fl_model_cfg *m = &cfg->models[i];
        int K = t->data[t->data_of_model[i]].jd.info.folds;
        if (!m->freeze_backbone || (K >= 2 && m->batch % (K - 1) == 0))
            continue;
        int lo = K >= 2 ? m->batch / (K - 1) * (K - 1) : 0, hi = lo + (K - 1);
        char where[64];
        if (m->batch_line > 0)
            snprintf(where, sizeof where, ":%d", m->batch_line);
        else
            snprintf(where, sizeof where, "%s", m->line > 0 ? "" : " (--set)");
        return fl_fail(
            err, FL_ECONFIG,
            "%s%s: models.[%d].batch = %d: a frozen backbone's folds share each batch, %s gives %d rows "
            "of each of the data file's %d folds, so batch must be a multiple of %d HINT: set batch = %d%s%d",
            cfg->path, where, i, m->batch, m->name, K >= 2 ? m->batch / (K - 1) : 0, K, K - 1, lo > 0 ? lo : hi,
            lo > 0 ? " or " : "", lo > 0 ? hi : hi + K - 1);
    }
    return FL_OK;
}

/* The jobs: each fold of each model, but one job for all the train folds of
 * a model with fuse_folds. */
void train_list_jobs(train_ctx *t)
{
    t->n_jobs = 0;
    for (int m = 0; m < t->cfg->n_models; m++) {
        if (t->cfg->models[m].fuse_folds) {
            t->jobs[t->n_jobs++] = (fl_job){m, -1};
            continue;
        }
        for (int i = 0; i < t->n_train_folds; i++)
            t->jobs[t->n_jobs++] = (fl_job){m, t->train_folds[i]};
    }
}

/* Loads every TorchScript backbone on this rank's device and runs it once on
 * the data's (2, ch, H, W), so that a module that is not TorchScript, does
 * not take these images or returns no (B, D) features stops the run before
 * any job, naming the config line; its D goes into the header. */
fl_code train_probe_backbones(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    for (int i = 0; i < cfg->n_models; i++) {
        const fl_model_cfg *m = &cfg->models[i];
        if (strncmp(m->backbone, FL_TORCHSCRIPT_PREFIX, strlen(FL_TORCHSCRIPT_PREFIX)) != 0)
            continue;
        const char *path = m->backbone + strlen(FL_TORCHSCRIPT_PREFIX);
        const fl_data_info *in = &t->data[t->data_of_model[i]].jd.info;
        /* a module two models share on one data file is probed once */
        for (int j = 0; j < i && !t->feature_dim[i]; j++)
            if (!strcmp(cfg->models[j].backbone, m->backbone) && t->data_of_model[j] == t->data_of_model[i])
                t->feature_dim[i] = t->feature_dim[j];
        fl_code rc = t->feature_dim[i] ? FL_OK
                                       : fl_torchscript_probe(path, in->channels, in->height, in->width, t->device,
                                                              &t->feature_dim[i], err);
        if (!rc)
            continue;
        if (m->backbone_line > 0)
            return fl_error_prefix(err, "%s:%d: models.[%d].backbone", cfg->path, m->backbone_line, i);
        return fl_error_prefix(err, "%s (--set): models.[%d].backbone", cfg->path, i);
    }
    return FL_OK;
}

/* "cfg:line" of model i (its batch's line for batch), or "cfg (--set)". */
static void plan_where(const fl_train_config *cfg, int i, int line, char *out, size_t n)
{
    if (line > 0)
        snprintf(out, n, "%s:%d", cfg->path, line);
    else if (cfg->models[i].line > 0)
        snprintf(out, n, "%s:%d", cfg->path, cfg->models[i].line);
    else
        snprintf(out, n, "%s (--set)", cfg->path);
}

fl_code train_check_models(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    for (int i = 0; i < cfg->n_models; i++) {
        const fl_model_cfg *m = &cfg->models[i];
        const train_data *td = &t->data[t->data_of_model[i]];
        const fl_data_info *in = &td->jd.info;
        char where[FL_PATH_MAX + 32];
        fl_model_spec spec;
        fl_job_model_spec(m, in, &spec);
        fl_code rc = fl_model_check_spec(&spec, err);
        if (rc) {
            plan_where(cfg, i, 0, where, sizeof where);
            fl_error_prefix(err, "%s: models.[%d] (%s) on data file %s (%d classes, %dx%dx%d)", where, i, m->name,
                            cfg->models[td->first_model].data_file, in->num_classes, in->channels, in->height,
                            in->width);
            err->code = FL_ECONFIG;
            if (in->height < 8 || in->width < 8)
                snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                         " HINT: prepare the data file at a larger size (foldline prep SRC OUT.h5 --size 32)");
            return FL_ECONFIG;
        }
        /* Each job trains on the rows of the other folds: a batch larger than
         * the fewest of them would be one partial batch per epoch. */
        int64_t fewest = -1;
        int fewest_fold = 0;
        for (int k = 0; k < t->n_train_folds; k++) {
            int64_t rows = 0;
            for (int64_t r = 0; r < in->n_train; r++)
                rows += t->fold[r] != t->train_folds[k];
            if (fewest < 0 || rows < fewest) {
                fewest = rows;
                fewest_fold = t->train_folds[k];
            }
        }
        if (fewest >= 0 && m->batch > fewest && t->world.rank == 0) {
            plan_where(cfg, i, m->batch_line, where, sizeof where);
            fprintf(stderr,
                    "foldline: warning: %s: models.[%d].batch = %d is larger than the %lld training rows of fold %d's "
                    "job (the rows of the other folds of %s): each epoch is one batch of %lld rows HINT: set batch "
                    "to at most %lld\n",
                    where, i, m->batch, (long long)fewest, fewest_fold, cfg->models[td->first_model].data_file,
                    (long long)fewest, (long long)fewest);
            fflush(stderr);
        }
    }
    return FL_OK;
}
