/* devpath.h -- the device-resident side of a fold-fused job (trainer/fused.c):
 * a frozen backbone's features of the train rows, the labels, the epoch's
 * order and every head's rows kept on the models' device, so that a training
 * step moves nothing between host and device but the images of a batch that
 * is not cached.
 *
 * - The feature cache: one (N, D) tensor on the device in the dtype of the
 *   backbone's features (the autocast dtype of run.precision when the
 *   backbone's last op runs in it, else float32), allocated only when it fits
 *   in the device's free memory (fl_devpath_open says when not).
 * - Labels (N) once per job; the epoch's order and each head's positions in
 *   it once per epoch; a batch's features are gathered by index on the device.
 * - Images of a batch that is not cached go through two pinned host buffers
 *   and are copied on a side CUDA stream, so the copy of batch s+1 overlaps
 *   the compute of batch s (events order the copy, the compute and the next
 *   reuse of a buffer). On the CPU the same slots are plain host tensors and
 *   the copy is the memcpy into them: the bookkeeping is the same.
 * - Each head's loss sum, correct count and non-finite steps accumulate in a
 *   float64 tensor on the device, read by the caller when it needs them (the
 *   progress interval, a checkpoint, the epoch's end), not after every step.
 *
 * On the CPU ("device" is the CPU's memory) every result equals the host path
 * of fused.c bit for bit: the same values go through the same operations.
 */
#ifndef FOLDLINE_TORCH_DEVPATH_H
#define FOLDLINE_TORCH_DEVPATH_H

#include <stddef.h>
#include <stdint.h>

#include "trainer/torch/bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fl_devpath fl_devpath;

/* Opens the path for heads models (n; models[0] owns the frozen backbone, all
 * on one device) over N train rows with labels (N), batches of at most cap
 * rows. want_cache: also the (N, D) feature cache, when need + headroom <=
 * the device's free memory (CUDA: cudaMemGetInfo; the CPU: unlimited;
 * either capped by $FOLDLINE_DEVICE_FREE_MB when set). *cached says whether
 * it was allocated; when not, note receives "needs X MB, Y MB free". */
fl_code fl_devpath_open(fl_model *const *models, int n, int64_t N, const int32_t *labels, int64_t cap, int want_cache,
                        fl_devpath **out, int *cached, char *note, size_t note_size, fl_error *err);
/* Waits for the device's work and frees everything (NULL: nothing). */
void fl_devpath_close(fl_devpath *d);
/* "cpu", "cuda:0", ...; the cache's dtype ("float32", "bfloat16", "float16")
 * and size in bytes (0 without a cache). */
const char *fl_devpath_device(const fl_devpath *d);
const char *fl_devpath_cache_dtype(const fl_devpath *d);
int64_t fl_devpath_cache_bytes(const fl_devpath *d);

/* ---- images through the backbone ---------------------------------------- */

/* Copies x (B images) into the next staging slot and starts its copy to the
 * device (asynchronous on CUDA); *slot receives it. Waits only when the
 * slot's previous copy is still running. */
fl_code fl_devpath_stage(fl_devpath *d, const uint8_t *x, int B, int *slot, fl_error *err);
/* The batch's features (B, D) on the device from slot's images, with the
 * training augmentation aug (B, or NULL); batch_lo: the epoch position (or
 * any base) of its first row, for fl_devpath_head_step. */
fl_code fl_devpath_embed(fl_devpath *d, int slot, const fl_augment *aug, int64_t batch_lo, fl_error *err);
/* The batch's features into the cache rows at positions [lo, lo + B) of the
 * order fl_devpath_epoch uploaded (for the cache's fill: its rows). */
fl_code fl_devpath_cache_put(fl_devpath *d, int64_t lo, fl_error *err);
/* The batch's features to the host (B, D) float32 (a group's cache fill). */
fl_code fl_devpath_batch_to_host(fl_devpath *d, float *out, fl_error *err);
/* Host float32 features (B, D) of cache rows rows (B) into the cache. */
fl_code fl_devpath_cache_put_host(fl_devpath *d, const int64_t *rows, int64_t B, const float *feats, fl_error *err);
/* Cache rows rows (B) to the host, float32 (B, D): validation's plain view. */
fl_code fl_devpath_cache_get_host(fl_devpath *d, const int64_t *rows, int64_t B, float *out, fl_error *err);

/* ---- an epoch ------------------------------------------------------------- */

/* The epoch's order rows (n) to the device, and for each head h its positions
 * pos[h] (count[h], ascending) in it: the rows it trains on. loss0,
 * correct0 (n heads): the accumulators' starting values (a resumed epoch).
 * pos NULL: the rows alone (the cache's fill). */
fl_code fl_devpath_epoch(fl_devpath *d, const int64_t *rows, int64_t n, const int64_t *const *pos, const int64_t *count,
                         const double *loss0, const double *correct0, fl_error *err);
/* Head h's forward and backward on its positions [a, b) (of its pos list),
 * from the cache (from_cache) or from the batch fl_devpath_embed made;
 * loss_scale multiplies the mean loss before backward. The step's loss sum
 * and correct count are added to the head's accumulators on the device. */
fl_code fl_devpath_head_step(fl_devpath *d, int h, int64_t a, int64_t b, int from_cache, double loss_scale,
                             fl_error *err);
/* One device-to-host copy: per head (n) its accumulated loss sum, correct
 * count and non-finite steps into out (n x 3), or with last = 1 the last
 * step's loss sum and correct count (n x 2). */
fl_code fl_devpath_read(fl_devpath *d, int last, double *out, fl_error *err);

#ifdef __cplusplus
}
#endif

#endif
