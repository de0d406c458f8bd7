/* run.h -- a trained run as `foldline predict` and `foldline export` read it.
 *
 * RUN_DIR/run.cfg (vote/manifest.h) names the data file, the folds, the
 * models with their vote weights and the vote method. Each model's
 * RUN_DIR/<model>/fold<k>/settings.txt (trainer/settings.h) records what
 * rebuilds its network: the data's classes, channels and size, mean and std,
 * run.seed (a frozen backbone is drawn from it, never saved), the backbone,
 * head, optimizer, batch, predict_with and the test-time views. The weights
 * are the checkpoint predict_with names (<predict_with>.pt), the one the
 * fold's preds.h5 came from. The class names come from the data file.
 *
 * Weights: RUN_DIR/ensemble/weights.txt (`vote --fit-weights`, vote/
 * vote_weights.h), when it exists, weighs the vote that `vote` submitted:
 * the soft-soft vote of all the run's models, each fold tempered with its
 * model's T. With the default method (even when run.cfg's vote_method is
 * another: vote's submission is then the fitted soft-soft vote) or
 * --method soft-soft, and every model chosen, the run takes the fitted
 * weights and temperatures (fitted = 1). Another method or a subset of the
 * models keeps run.cfg's weights: the fitted ones were fitted for the whole
 * soft-soft ensemble; weights_line says so.
 */
#ifndef FOLDLINE_RUN_H
#define FOLDLINE_RUN_H

#include <stdint.h>

#include "base/error.h"
#include "vote/manifest.h"
#include "trainer/spec.h"

typedef struct {
    char name[FL_NAME_MAX];
    double weight;              /* run.cfg's, or weights.txt's when the run is fitted */
    double temperature;         /* weights.txt's when fitted, else 1 */
    char backbone[FL_PATH_MAX]; /* "smallcnn", ..., "torchscript:PATH" */
    int frozen;                 /* freeze_backbone: the folds share one backbone */
    double backbone_lr_scale;
    char head_type[16], head_act[8];
    int head_hidden;
    char optimizer[8];     /* a checkpoint loads only into a model of its optimizer */
    int batch;             /* the global batch it trained and predicted with */
    char predict_with[16]; /* best_acc | best_loss | last: the checkpoint <predict_with>.pt */
    int n_tta;
    int tta[FL_MAX_TTA];         /* fl_tta_kind */
    int channels, height, width; /* the images of its data file */
    int num_classes;
    float mean[3], std[3];  /* per channel on the 0..1 scale (0.5 when the run gave none) */
    uint64_t backbone_seed; /* frozen: fl_order_model_seed(run.seed, name) */
} fl_run_model;

typedef struct {
    char dir[FL_PATH_MAX];
    fl_manifest man;
    char method[16];         /* the vote: --method, else soft-soft with weights.txt, else run.cfg's vote_method */
    int fitted;              /* the models' weights and temperatures are weights.txt's (method soft-soft) */
    char weights_line[1024]; /* which weights: "fitted, from ...: a 0.6 (T 1.2), ..." or "run.cfg's: ..." */
    int num_classes;
    char **classes; /* (num_classes) names, from the data file */
    int n_models;   /* the chosen ones, in run.cfg's order */
    fl_run_model models[FL_MAX_MODELS];
} fl_run;

/* Reads the run at dir for the models named in models ("a,b"; NULL: all of
 * them) and the vote `method` (NULL: the run's). Every chosen model x fold
 * must be complete (settings.txt, preds.h5 and its checkpoint): a run with
 * missing folds is FL_EINPUT listing them with a HINT. A per-model method
 * (soft, hard) needs exactly one chosen model. A TorchScript backbone must
 * be the very file the run trained with (size and hash). weights.txt is
 * applied as said above; a malformed one, or one that does not name exactly
 * the run's models, is FL_EINPUT with a HINT. */
fl_code fl_run_open(const char *dir, const char *models, const char *method, fl_run *run, fl_error *err);
void fl_run_free(fl_run *run);

/* RUN_DIR/<model>/fold<k>/<predict_with>.pt of model m's i-th fold (run.cfg's order). */
void fl_run_checkpoint(const fl_run *run, int m, int i, char *buf, size_t n);

/* The paths a run reads (run.cfg, the data file, each chosen fold's
 * settings.txt, preds.h5 and checkpoint), for refusing one as an output:
 * fills up to max of them into paths (malloc'd strings; free with
 * fl_run_free_paths) and returns the count. */
int fl_run_inputs(const fl_run *run, char **paths, int max);
void fl_run_free_paths(char **paths, int n);

#endif
