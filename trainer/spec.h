/* spec.h -- a training run as plain data.
 *
 * config/config.c fills an fl_train_config from a libconfig file (plus
 * --set overrides) and checks every key; trainer/ and dist/ only read it.
 * Each value keeps the config line it came from (the *_line fields), so that
 * checks that need the data file (channels, fold count) can still name the
 * file, line and key.
 */
#ifndef FOLDLINE_SPEC_H
#define FOLDLINE_SPEC_H

#include <stdint.h>

#include "base/names.h"

#define FL_MAX_OPS        16
#define FL_MAX_GRID_STEPS 32 /* grid_distortion num_steps */
#define FL_MAX_HOLES      16 /* cutout num_holes */
#define FL_MAX_STAGES     16
#define FL_MAX_MODELS     32
#define FL_MAX_FOLDS      64
#define FL_MAX_TTA        8
#define FL_NAME_MAX       64
#define FL_PATH_MAX       4096
/* models.[i].backbone = "torchscript:PATH": a TorchScript module as the backbone */
#define FL_TORCHSCRIPT_PREFIX "torchscript:"

typedef enum {
    FL_OP_HFLIP,
    FL_OP_VFLIP,
    FL_OP_ROTATE,              /* degrees: uniform in [-degrees, degrees] */
    FL_OP_ELASTIC,             /* alpha, sigma */
    FL_OP_GRID_DISTORTION,     /* num_steps, distort_limit */
    FL_OP_BRIGHTNESS_CONTRAST, /* brightness_limit, contrast_limit */
    FL_OP_CUTOUT               /* num_holes, size */
} fl_op_kind;

/* What each op means: trainer/torch/bridge.h (fl_aug_draw) and docs/config.md. */
typedef struct {
    fl_op_kind kind;
    double p;                /* probability per image, default 0.5 */
    double degrees;          /* rotate: (0, 180] */
    double alpha, sigma;     /* elastic: alpha >= 0 (pixels), sigma > 0 (pixels) */
    int num_steps;           /* grid_distortion: 1..32 */
    double distort_limit;    /* grid_distortion: [0, 1) */
    double brightness_limit; /* brightness_contrast: [0, 1], default 0.2 */
    double contrast_limit;   /* brightness_contrast: [0, 1], default 0.2 */
    int num_holes;           /* cutout: 1..16 */
    double size;             /* cutout: pixels (size_in_pixels) or a fraction (0, 1] of each side */
    int size_in_pixels;      /* cutout: size was an integer */
} fl_aug_op;

/* From epoch from_epoch on (0-based), ops replace the previous stage's ops. */
typedef struct {
    int from_epoch;
    int n_ops;
    fl_aug_op ops[FL_MAX_OPS];
} fl_aug_stage;

typedef enum { FL_TTA_HFLIP, FL_TTA_VFLIP } fl_tta_kind;

typedef struct {
    char name[FL_NAME_MAX];       /* models.[i].name: letters, digits, '_', '-', '.'; unique */
    char backbone[FL_PATH_MAX];   /* one of fl_backbone_names (base/names.h) or "torchscript:PATH", PATH
                                     resolved against the config file's folder */
    int backbone_line;            /* config line of backbone (0: from --set) */
    int freeze_backbone;          /* default 0 */
    double backbone_lr_scale;     /* > 0, default 1: a trained backbone's lr is lr * this */
    int fuse_folds;               /* frozen backbone only, default 1 then: one process trains every fold's head
                                     from one backbone pass per batch (trainer/fused.h); results are the same */
    fl_head head_type;            /* linear (default) | mlp3 */
    int head_hidden;              /* mlp3 hidden width, default 1024 */
    fl_act head_act;              /* relu (default) | gelu */
    int epochs;                   /* >= 1, required */
    int batch;                    /* >= 1, default 64; the global batch (of each fold's head when frozen:
                                     a multiple of folds - 1, see trainer/order.h) */
    int batch_line;               /* config line of batch (0: default or --set) */
    fl_optim optimizer;           /* adam (default) | adamw | sgd */
    double lr;                    /* > 0, default 1e-3 */
    double weight_decay;          /* >= 0, default 0 */
    double momentum;              /* sgd, [0, 1), default 0.9 */
    int nesterov;                 /* sgd, default 0 */
    double clip_grad_norm;        /* 0 = off (default); else max global L2 norm */
    fl_sched schedule;            /* none (default) | step | cosine | onecycle */
    int step_size;                /* step: epochs per step (>= 1), default 10 */
    double gamma;                 /* step: factor (0, 1], default 0.1 */
    int warmup_epochs;            /* cosine: linear warm-up epochs, default 0 */
    double min_lr;                /* cosine, onecycle: floor, default 0 */
    double warmup;                /* onecycle: share of all steps warming up, [0, 1), default 0.3 */
    double label_smoothing;       /* [0, 1), default 0 */
    fl_predict_with predict_with; /* best_acc (default) | best_loss | last */
    int n_tta;
    fl_tta_kind tta[FL_MAX_TTA]; /* extra views averaged with the plain one at prediction */
    int n_stages;
    fl_aug_stage stages[FL_MAX_STAGES]; /* sorted by from_epoch, strictly increasing */
    double vote_weight;                 /* vote.weights[i], default 1 */
    fl_precision precision;             /* fp32 | bf16 | fp16: models.[i].precision, else run.precision */
    int own_precision, precision_line;  /* given by models.[i].precision; its line (0: --set or run.precision's) */
    int line;                           /* config line of this model's group */
    /* The model's data: each key from models.[i].data when it has it, else
     * from the top-level data (own_* says which, *_line where it was given). */
    char data_file[FL_PATH_MAX]; /* relative paths are relative to the working directory */
    int n_mean, n_std;           /* 0 when absent in both: mean 0.5, std 0.5 per channel */
    double mean[3], std[3];
    int data_file_line, mean_line, std_line; /* 0: from --set (or absent) */
    int own_data_file, own_mean, own_std;
} fl_model_cfg;

typedef struct {
    char path[FL_PATH_MAX]; /* the config file, for messages */
    /* run */
    char run_name[FL_NAME_MAX];    /* default "run" */
    char out_dir[FL_PATH_MAX];     /* default "runs"; the run lives in out_dir/run_name */
    uint32_t seed;                 /* default 42 */
    int threads;                   /* 0 (default): the node's cores / its ranks */
    char scratch_dir[FL_PATH_MAX]; /* node-local scratch (the feature cache file); "" (default): $SLURM_TMPDIR, else
                                      $TMPDIR, else /tmp, never the shared run directory unless named here */
    double checkpoint_minutes;     /* 0 (default): checkpoints at epoch ends only; else also every so many minutes */
    fl_on_nan on_nan;              /* stop (default): a non-finite loss ends the job; "skip_step": drop that step */
    double progress_s;             /* seconds between progress lines of an epoch (default 30); 0: none. Also the
                                      heartbeat of status.txt (at least 1 s apart; 30 s when 0) */
    fl_precision precision;        /* the backbone's autocast dtype: fp32 (default) | bf16 | fp16 (CUDA only) */
    int precision_line;            /* config line of run.precision (0: default or --set) */
    /* data */
    char data_file[FL_PATH_MAX]; /* "" when absent: then every model gives its own data.file */
    int data_file_line;
    int n_mean, n_std; /* 0 when absent: mean 0.5, std 0.5 per channel */
    double mean[3], std[3];
    int mean_line, std_line;
    fl_data_cache data_cache;       /* none (default): read batches from the file; memory: load it whole */
    fl_data_verify data_verify;     /* full (default): every image's checksum before training; open: the seal only */
    fl_feature_cache feature_cache; /* frozen backbones' un-augmented features: auto (default): in memory up to
                                      feature_cache_mb, else a scratch HDF5 file; "memory"; "file"; "none";
                                      "device": on the model's device (a GPU's memory; the CPU's: "memory") */
    double feature_cache_mb;        /* default 4096 */
    /* folds */
    int n_folds_use; /* 0 when absent: every fold of the data file */
    int folds_use[FL_MAX_FOLDS];
    int folds_use_line;
    /* dist */
    int ranks_per_job;       /* default 1; must divide the MPI world size; 0: all of it */
    fl_dist_backend backend; /* auto (default) | nccl | mpi */
    double timeout_s;        /* > 0, default 600: a collective waiting longer is a hang, reported and aborted */
    double lock_timeout_s;   /* >= 5, default 60: a job lock of another host with an older heartbeat is stale */
    int overlap;             /* default 1: the gradient all-reduce in buckets that start during backward;
                                0: one all-reduce of every gradient after backward */
    double bucket_mb;        /* > 0, default 25: the buckets' size in MB (1e6 bytes of float32 gradients) */
    int ranks_per_job_line, backend_line;
    /* models */
    int n_models;
    fl_model_cfg models[FL_MAX_MODELS];
    /* vote */
    fl_vote_method vote_method; /* soft-soft (default) | soft-hard | hard-hard | soft | hard */
} fl_train_config;

#endif
