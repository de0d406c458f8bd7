/* bridge.h -- the C face of foldline's libtorch code (trainer/torch/).
 *
 * This header is the whole boundary between C and C++: plain types and
 * opaque handles only. Every function catches what libtorch throws, stores
 * the message in the fl_error and returns an fl_code, so no exception or C++
 * type ever reaches C.
 */
#ifndef FOLDLINE_TORCH_BRIDGE_H
#define FOLDLINE_TORCH_BRIDGE_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char version[32];  /* libtorch's version, e.g. "1.13.0" */
    int cuda_built;    /* this libtorch was built with CUDA */
    int cuda_devices;  /* CUDA devices visible now (0 without a GPU) */
    int intra_threads; /* libtorch's current intra-op thread count */
} fl_torch_info;

fl_code fl_torch_get_info(fl_torch_info *info, fl_error *err);

/* Sizes every thread pool that computes (n >= 1): libtorch's intra-op and
 * inter-op pools, OpenMP's, and the BLAS's own (OpenBLAS, BLIS or MKL,
 * whichever libblas.so.3 is, found at run time). The BLAS would otherwise
 * size its pool from the process's core mask, and so train another model
 * under mpirun's binding than alone. */
fl_code fl_torch_set_threads(int n, fl_error *err);

/* The BLAS whose pool fl_torch_set_threads set ("OpenBLAS", ...), or NULL
 * when none of those was found (a single-threaded BLAS). */
const char *fl_torch_blas_pool(void);

/* Makes the C library keep memory that freed tensors return, instead of
 * handing it back to the kernel and faulting it in again (zeroed) at the next
 * step: CPU training of small models runs about 3 times faster. The process
 * keeps its peak memory. Process-wide (glibc's mallopt; a no-op elsewhere, and
 * where another allocator, such as AddressSanitizer's, refuses the thresholds):
 * call it once at startup, before the first model. */
fl_code fl_torch_keep_freed_memory(fl_error *err);

/* ---- models ---------------------------------------------------------------
 * An fl_model is a backbone, a head, a loss and an optimizer on one device.
 * Images cross the boundary as uint8 (B, ch, H, W) host buffers, exactly as
 * the data file stores them; the bridge converts them to float, divides by
 * 255 and normalises with mean/std on the model's device.
 */
typedef struct fl_model fl_model;

typedef struct {
    const char *backbone; /* "resnet18" | "resnet34" | "resnet50" | "smallcnn" | "smallresnet" | "mlp" |
                             "torchscript:PATH" */
    int in_channels, height, width, num_classes; /* in_channels 1..3 (mean/std); height, width >= 8 */
    const char *head_type;                       /* "linear" | "mlp3" */
    int head_hidden;                             /* mlp3 */
    const char *head_act;                        /* "relu" | "gelu" */
    int freeze_backbone;                         /* train the head only (the backbone also stays in eval mode) */
    double backbone_lr_scale; /* trained backbone: its lr is lr * this (> 0; 0 means 1); the head's is lr */
    const char *optimizer;    /* "adam" | "adamw" | "sgd" */
    double lr, weight_decay, momentum;
    int nesterov;
    double clip_grad_norm;  /* 0 = off */
    double label_smoothing; /* 0 = plain cross-entropy */
    float mean[3], std[3];  /* per channel, on the 0..1 scale */
    uint64_t seed;          /* weight initialisation (of the head alone when backbone_seed or backbone_of is set) */
    uint64_t backbone_seed; /* frozen backbone: its weights from this seed, the head's from seed (0: both from seed) */
    const struct fl_model *backbone_of; /* frozen backbone: share this model's (the same module, one copy in memory) */
    const char *device;                 /* "cpu", "cuda", "cuda:N" */
    const char *precision; /* "fp32" | "bf16" | "fp16" (CUDA only): the backbone's autocast dtype, see below */
    int memory_format;     /* a convolutional backbone's activations (a ResNet, the smallcnn, the smallresnet, a
                              TorchScript one with more than one 4-d weight): 0 auto (channels_last on CUDA,
                              and on the CPU for smallresnet, whose narrow convolutions oneDNN runs faster in
                              NHWC; contiguous on the CPU otherwise, where it measured slower: docs/gpus.md),
                              1 contiguous, 2 channels_last */
} fl_model_spec;           /* NULL head_type, head_act, optimizer, device, precision: "linear", "relu", "adam",
                              "cpu", "fp32" */

/* Mixed precision (spec.precision other than "fp32"): the backbone's forward
 * runs under libtorch's autocast in bfloat16 or float16 (convolutions and
 * matrix products in that dtype, what autocast keeps in float32 in float32),
 * and so does its backward when it trains. Parameters (the master weights),
 * the head, the loss, gradients and the optimizer stay float32; features
 * leave the backbone in the autocast dtype and are widened to float32
 * (exactly) for the head and for every host buffer below. "fp16" needs a
 * CUDA device (FL_EINPUT on the CPU) and, with a trained backbone, scales the
 * loss (fl_model_loss_scale). */

/* ---- augmentation ----------------------------------------------------------
 * Per image, the drawn parameters of every op of its augmentation stage, in
 * the order the stage lists them; the caller draws them (trainer/augment.c)
 * from the seed, the epoch and the row alone. Coordinates are pixels, x to
 * the right and y down, (0, 0) the centre of the top-left pixel.
 *
 * How the bridge applies them: the geometric ops (flips, rotate, elastic,
 * grid distortion) of an image compose into one sampling map, and one
 * bilinear grid_sample (reflect-101 borders: padding_mode reflection,
 * align_corners true) per batch resamples every image that has one; an image
 * whose fired geometric ops are only flips is flipped exactly instead (two
 * hflips cancel), and an image with none is left bit for bit as it was. The
 * result is what applying the ops one after the other gives (albumentations
 * 1.4.15, OpenCV INTER_LINEAR and BORDER_REFLECT_101), up to the single
 * interpolation: nothing is resampled twice. Then the pixel ops
 * (brightness_contrast, cutout) in their listed order, on the 0..255 scale. */
#define FL_AUG_MAX_OPS      16 /* ops per image (= FL_MAX_OPS) */
#define FL_GRID_MAX_STEPS   32 /* grid distortion: num_steps <= this */
#define FL_CUTOUT_MAX_HOLES 16 /* cutout: holes <= this */

typedef enum {
    FL_AUG_NONE,                /* the op did not fire: nothing happens */
    FL_AUG_HFLIP,               /* x -> W-1-x */
    FL_AUG_VFLIP,               /* y -> H-1-y */
    FL_AUG_ROTATE,              /* angle_deg about ((W-1)/2, (H-1)/2); positive: counter-clockwise on screen */
    FL_AUG_ELASTIC,             /* elastic */
    FL_AUG_GRID_DISTORTION,     /* grid */
    FL_AUG_BRIGHTNESS_CONTRAST, /* bc */
    FL_AUG_CUTOUT               /* cutout */
} fl_aug_kind;

/* Output pixel (x, y) samples the input at (x + dx, y + dy), where dx, dy =
 * alpha * GaussianBlur(noise, sigma) (OpenCV's kernel size for a float image,
 * cvRound(8 sigma + 1) | 1, and reflect-101 borders) and the two noise fields
 * are draws 1..H*W (dx) and H*W+1..2*H*W (dy), row-major, of an fl_rng
 * (trainer/rng.h) whose state is noise_key: draw n is the n-th fl_rng_next,
 * z, turned into (z >> 40) * 2^-23 - 1, uniform in [-1, 1). The bridge
 * generates them on the model's device. alpha 0 leaves the image as it is. */
typedef struct {
    float alpha, sigma; /* alpha >= 0, sigma > 0 */
    uint64_t noise_key;
} fl_aug_elastic;

/* albumentations 1.4.15 grid_distortion (not normalised): per axis step =
 * side / num_steps pixels; cell i = 0..num_steps covers [i*step, (i+1)*step)
 * and maps linearly (numpy linspace, both ends included) from where the
 * previous cell ended to that plus step * steps[i]; a cell that reaches past
 * the side ends at the side instead. Output (x, y) samples the input at
 * (xx[x], yy[y]). */
typedef struct {
    int num_steps;                        /* 1..FL_GRID_MAX_STEPS */
    float steps_x[FL_GRID_MAX_STEPS + 1]; /* 1 + uniform(-limit, limit) each */
    float steps_y[FL_GRID_MAX_STEPS + 1];
} fl_aug_grid;

/* x -> clip(alpha * x + beta * 255, 0, 255) */
typedef struct {
    float alpha, beta;
} fl_aug_bc;

/* n_holes rectangles set to 0, each h x w pixels: size x size when in_pixels,
 * else (int)(size * H) x (int)(size * W), at y1 = floor(pos[i][0] * (H - h + 1)),
 * x1 = floor(pos[i][1] * (W - w + 1)). */
typedef struct {
    int n_holes, in_pixels;
    float size;
    float pos[FL_CUTOUT_MAX_HOLES][2]; /* uniform in [0, 1): y, x */
} fl_aug_cutout;

typedef struct {
    int kind; /* fl_aug_kind; the member of the union it uses: */
    union {
        float angle_deg; /* rotate; 0 leaves the image as it is */
        fl_aug_elastic elastic;
        fl_aug_grid grid;
        fl_aug_bc bc;
        fl_aug_cutout cutout;
    };
} fl_aug_draw;

typedef struct {
    int n_ops;                       /* 0..FL_AUG_MAX_OPS */
    fl_aug_draw ops[FL_AUG_MAX_OPS]; /* in the order they apply */
} fl_augment;

/* Builds the model on spec->device. Seeds libtorch's global CPU generator
 * with spec->seed first, so that two models of the same spec start from the
 * same weights (on any device: weights are drawn on the CPU). A frozen
 * backbone may come from spec->backbone_seed instead (the folds of a frozen
 * model share one backbone, each has its own head), or be the very module of
 * another model, spec->backbone_of, which must be frozen too and have the
 * same backbone, channels and image size; it must outlive this model's use
 * of it only as long as neither is freed (the module is reference-counted). Unknown names
 * and bad numbers are FL_EINPUT, naming the value and what is allowed.
 *
 * "torchscript:PATH" loads a TorchScript module (torch.jit.script or
 * torch.jit.trace, saved from Python) that maps float images (B, ch, H, W)
 * to features (B, D); PATH is used as given (launch/ resolves it against the
 * config). D comes from one forward pass of 2 zero images on the device, in
 * eval mode. A file that is missing or not TorchScript, or a module that
 * fails on (2, in_channels, height, width) or returns anything but (2, D),
 * is FL_EINPUT naming PATH (fl_torchscript_probe below says it earlier).
 * Its parameters train (or freeze) and its buffers save like a built-in
 * backbone's. With backbone_lr_scale != 1 and a trained backbone the
 * optimizer has two parameter groups, backbone then head.
 *
 * Threads: an fl_model is used from one thread at a time; fl_model_new,
 * fl_torch_manual_seed and fl_torch_set_threads change process-wide libtorch
 * state, so call them from one thread only. */
fl_code fl_model_new(const fl_model_spec *spec, fl_model **out, fl_error *err);

/* fl_model_new's checks of spec that need no libtorch (names, image size at
 * least 8x8 for every built-in backbone, classes, channels, hyperparameters),
 * alone: for launch/, to refuse a run before any file of it is written. */
fl_code fl_model_check_spec(const fl_model_spec *spec, fl_error *err);
void fl_model_free(fl_model *m);

/* The check of fl_model_new's "torchscript:PATH" backbone alone, without a
 * model: loads the module at path onto device ("cpu", "cuda", "cuda:N") and
 * runs it once (eval, no grad) on 2 zero images (2, in_channels, height,
 * width). FL_OK with *dim = D when it returns features (2, D); otherwise the
 * FL_EINPUT of fl_model_new. For launch/, to refuse a module before any job
 * starts, naming the config line. */
fl_code fl_torchscript_probe(const char *path, int in_channels, int height, int width, const char *device, int *dim,
                             fl_error *err);

/* Parameters of backbone + head; trainable_only counts those the optimizer updates. */
int64_t fl_model_num_params(const fl_model *m, int trainable_only);
/* Width D of the backbone's features (the head's input); -1 when it cannot be
 * read (no model, or libtorch raised). */
int fl_model_feature_dim(const fl_model *m);
/* The memory format the backbone runs in: 2 channels_last (a convolutional
 * backbone with memory_format 2, or 0 on CUDA), else 1 contiguous. */
int fl_model_memory_format(const fl_model *m);

/* The head's learning rate; a trained backbone's is lr * backbone_lr_scale. */
fl_code fl_model_set_lr(fl_model *m, double lr, fl_error *err);

/* Forward and backward on one batch (train mode), gradients accumulated into
 * the parameters' .grad (zeroed by fl_model_step). x: uint8 (B, ch, H, W);
 * y: int32 (B); aug: (B) or NULL. loss_scale multiplies the mean loss before
 * backward (B / global batch, for data-parallel shards). Outputs the summed
 * (not mean) loss over the B rows and the count of correct argmaxes. */
fl_code fl_model_forward_backward(fl_model *m, const uint8_t *x, const int32_t *y, int B, const fl_augment *aug,
                                  double loss_scale, double *loss_sum, int *correct, fl_error *err);

/* Clips gradients (if configured), steps the optimizer, zeroes gradients. */
fl_code fl_model_step(fl_model *m, fl_error *err);
/* fp16 with a trained backbone: dynamic loss scaling, as PyTorch's GradScaler
 * with its defaults. fl_model_forward_backward multiplies the loss by the
 * scale (65536 at first); fl_model_step divides the gradients by it before
 * clipping, then skips the step when one of them is inf or NaN (the scale
 * halves) or steps (after 2000 steps in a row the scale doubles). Returns 1
 * with the scale and the good steps since it last changed, the state a
 * checkpoint keeps; 0 for every other model (no scaling). */
int fl_model_loss_scale(const fl_model *m, double *scale, int64_t *good_steps);
/* Restores that state (a resumed run); FL_EINPUT for a model without scaling
 * or a scale that is not a finite number > 0. */
fl_code fl_model_set_loss_scale(fl_model *m, double scale, int64_t good_steps, fl_error *err);

/* Drops the gradients without a step (a step skipped for a non-finite loss). */
fl_code fl_model_zero_grad(fl_model *m, fl_error *err);

/* Eval mode, no grad: softmax probabilities float32 (B, num_classes) into
 * probs, averaged over the plain view and the n_tta extra views (tta: 0 =
 * hflip, 1 = vflip, as fl_tta_kind). If y is not NULL, also the summed
 * cross-entropy (without label smoothing) and the correct count of the
 * averaged probabilities. */
fl_code fl_model_predict(fl_model *m, const uint8_t *x, int B, const int *tta, int n_tta, const int32_t *y,
                         float *probs, double *loss_sum, int *correct, fl_error *err);

/* Eval mode, no grad: the backbone's features float32 (B, D) into feats, with
 * D = fl_model_feature_dim(m). */
fl_code fl_model_features(fl_model *m, const uint8_t *x, int B, float *feats, fl_error *err);

/* ---- a frozen backbone's features, shared by several heads -----------------
 * The folds of a frozen model differ only in their heads: one backbone pass
 * per batch feeds them all (trainer/fused.c). These three calls split
 * fl_model_forward_backward and fl_model_predict at the features, on host
 * float32 buffers: a head given the features fl_model_embed computed gets
 * what the whole model computes from the images (up to float rounding, as
 * the backbone sees other batches). */

/* The features (B, D) into feats of x with the training augmentation aug
 * (NULL: none) or, view >= 0, the test-time view (0 hflip, 1 vflip; aug must
 * be NULL), computed as fl_model_forward_backward and fl_model_predict do
 * (backbone in eval mode, no grad). The model's backbone must be frozen. */
fl_code fl_model_embed(fl_model *m, const uint8_t *x, int B, const fl_augment *aug, int view, float *feats,
                       fl_error *err);

/* fl_model_forward_backward from features (B, D) instead of images. */
fl_code fl_model_head_forward_backward(fl_model *m, const float *feats, const int32_t *y, int B, double loss_scale,
                                       double *loss_sum, int *correct, fl_error *err);

/* fl_model_predict from features: views[0] the plain view's (B, D), then one
 * per test-time view in fl_model_predict's order; the softmax averaged over
 * the n_views the same way. */
fl_code fl_model_head_predict(fl_model *m, const float *const *views, int n_views, int B, const int32_t *y,
                              float *probs, double *loss_sum, int *correct, fl_error *err);

/* Model and optimizer state (parameters, buffers, optimizer moments, lr) to
 * and from a file, with the caller's `job` text (its progress: epoch, step,
 * best metrics) saved beside them (NULL: none; on load, job receives it, ""
 * when the file has none, in job_size bytes). The caller makes writes atomic
 * (temporary name, rename). A model loads only a file saved by a model of
 * the same backbone (for a TorchScript one: its file name and D), channels,
 * classes, head, optimizer and backbone_lr_scale (FL_EINPUT otherwise, naming
 * both); after a failed load other than that, free the model. On the CPU with
 * a fixed thread count, training on after a load gives bit for bit what it
 * would have given without the stop. */
fl_code fl_model_save(fl_model *m, const char *path, const char *job, fl_error *err);
fl_code fl_model_load(fl_model *m, const char *path, char *job, size_t job_size, fl_error *err);
/* The same from a file's n bytes read elsewhere (a group's leader reads the
 * checkpoint and sends it to the group); path names it in messages. */
fl_code fl_model_load_bytes(fl_model *m, const void *bytes, size_t n, const char *path, char *job, size_t job_size,
                            fl_error *err);
/* Only the parameters and buffers of such a file, for prediction: the
 * optimizer's state is released first (training on afterwards starts the
 * optimizer afresh), so the weights are never in memory twice beside it. */
fl_code fl_model_load_weights(fl_model *m, const char *path, fl_error *err);

/* ---- data-parallel training (dist/ provides the collectives) ----------------
 * A collective over the ranks of a group on one flat float32 buffer of count
 * values, in place: an all-reduce (sum) of gradients, or a broadcast of group
 * rank 0's values. buf lies in host memory or on the model's device, as the
 * caller of the fl_model_* function below asked (host). Returns an fl_code
 * and leaves its message in err. */
typedef fl_code (*fl_flat_collective_fn)(float *buf, int64_t count, void *ctx, fl_error *err);

/* Packs the .grad of every trainable parameter (in a fixed order; a missing
 * gradient packs as zeros) into one contiguous float32 buffer, calls
 * fn(buf, count, ctx) once, and unpacks the result into the gradients. One
 * bucket for the whole model: one collective per step, never one per tensor.
 * host = 1: the buffer is in host memory (copied there when the model is on
 * a GPU), for MPI; host = 0: on the model's device, for NCCL, written on the
 * device's current CUDA stream (fl_model_cuda_stream). */
fl_code fl_model_grads_reduce(fl_model *m, int host, fl_flat_collective_fn fn, void *ctx, fl_error *err);

/* The same for n models at once (the heads of a fold-fused job), in one
 * buffer and one call, models in the given order; all on one device. */
fl_code fl_models_grads_reduce(fl_model *const *ms, int n, int host, fl_flat_collective_fn fn, void *ctx,
                               fl_error *err);

/* ---- overlapping the gradient all-reduce with backward ----------------------
 * The gradients go out in buckets while backward runs, as PyTorch's DDP does
 * them: the trainable parameters in reverse order (the order backward
 * produces their gradients), cut into buckets of about bucket_bytes, each a
 * contiguous slice of one flat float32 buffer. A hook on each parameter's
 * gradient accumulator (it runs after the gradient is added to .grad) marks
 * it ready; when all of a bucket's are, and all earlier buckets have started
 * (every rank starts them in the same order), its gradients are copied into
 * its slice and a nonblocking collective starts on it, and backward goes on.
 *
 * The nonblocking collective, in three calls dist/ provides (ctx is theirs):
 *   start: begins the sum over the group of buf (count float32, in place),
 *          setting *handle (NULL is a valid handle: nothing to wait for);
 *   test:  (may be NULL) lets outstanding collectives progress; 1 when
 *          handle's has finished, 0 when not; never fails (wait reports);
 *   wait:  completes handle's collective and releases the handle, whether
 *          or not the call fails; called exactly once per started handle.
 * any_thread = 0: start and test are only called on the thread that called
 * fl_model_grads_overlap_begin (MPI initialised MPI_THREAD_FUNNELED): a
 * hook that runs elsewhere (autograd's device threads, for CUDA tensors)
 * only marks its bucket ready, and fl_model_grads_overlap_end starts it. */
typedef struct {
    fl_code (*start)(float *buf, int64_t count, void *ctx, void **handle, fl_error *err);
    int (*test)(void *handle, void *ctx);
    fl_code (*wait)(void *handle, void *ctx, fl_error *err);
    int any_thread;
} fl_flat_async_ops;

typedef struct {
    int buckets;             /* of the model */
    int started_in_backward; /* of them, started while backward ran (the rest by _end) */
    double busy_s;           /* seconds the hooks spent starting and testing collectives (copies included) */
} fl_overlap_stats;

/* Arms the model for the next backward (fl_model_forward_backward): its
 * gradients reduce as they become ready, with ops on ctx; host as in
 * fl_model_grads_reduce (1: the buckets lie in host memory; a GPU model's
 * then go out at _end only). bucket_bytes >= 1 (the buckets are built again
 * when it changes). Call _end before the next _begin, the step or a
 * zero_grad, also on a rank whose shard was empty (no backward at all). */
fl_code fl_model_grads_overlap_begin(fl_model *m, int host, const fl_flat_async_ops *ops, void *ctx,
                                     int64_t bucket_bytes, fl_error *err);

/* Starts the buckets backward did not (parameters the loss did not reach:
 * their missing gradients go out as zeros, as in fl_model_grads_reduce), in
 * order, waits for every bucket and writes the sums into the .grad tensors;
 * stats (may be NULL) says how it went. The sums are fl_model_grads_reduce's
 * (up to the collective's own order of addition). After an error the model's
 * gradients are undefined; every started collective has been waited for. */
fl_code fl_model_grads_overlap_end(fl_model *m, fl_overlap_stats *stats, fl_error *err);

/* What fl_model_state_broadcast sends: parameters (all of them, trainable or
 * not) and floating-point buffers (batch-norm running means and variances;
 * integer buffers such as num_batches_tracked stay as they are). A frozen
 * backbone's are left out: they never change, and every rank builds the same
 * (from the seed or the TorchScript file). */
enum { FL_STATE_PARAMS = 1, FL_STATE_BUFFERS = 2 };

/* Like fl_model_grads_reduce, for the tensors `what` names: packs them, calls
 * fn once (a broadcast from group rank 0), unpacks. No call when the model
 * has none of them (a model without batch norm has no buffers). */
fl_code fl_model_state_broadcast(fl_model *m, int what, int host, fl_flat_collective_fn fn, void *ctx, fl_error *err);

/* The current CUDA stream of the model's device (a cudaStream_t), on which
 * the device buffers above are written; NULL for a model on the CPU or a
 * libtorch without CUDA. */
void *fl_model_cuda_stream(const fl_model *m);

/* Seeds libtorch's global generators (CPU and CUDA). */
fl_code fl_torch_manual_seed(uint64_t seed, fl_error *err);

/* The augmentation of fl_model_forward_backward, for tests and previews:
 * x uint8 (B, ch, H, W), aug (B) -> out float32 (B, ch, H, W) on the 0..255
 * scale, not normalised, computed on device ("cpu", "cuda", "cuda:N"; NULL:
 * "cpu"). A positive angle_deg turns the picture counter-clockwise as seen
 * with row 0 at the top (90 degrees on a square N x N image:
 * out[y][x] = in[x][N-1-y]). */
fl_code fl_torch_augment_batch(const uint8_t *x, int B, int ch, int H, int W, const fl_augment *aug, const char *device,
                               float *out, fl_error *err);

/* The two uniform noise fields of an elastic draw with noise_key, before the
 * blur, as the bridge generates them on device: out float32 (2, H, W). */
fl_code fl_torch_elastic_noise(uint64_t noise_key, int H, int W, const char *device, float *out, fl_error *err);

#ifdef __cplusplus
}
#endif

#endif
