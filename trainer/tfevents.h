/* tfevents.h -- TensorBoard scalars of a job, beside its metrics.csv.
 *
 * RUN_DIR/<model>/fold<k>/events.out.tfevents.<unix time>.<host>: TFRecord
 * records (uint64 length, masked CRC-32C of the length, the data, masked
 * CRC-32C of the data), each an Event protocol buffer encoded here by hand:
 * wall_time (1, double), step (2, int64), file_version (3, "brain.Event:2",
 * the first record only) or summary (5) with one Summary.Value {tag (1),
 * simple_value (2, float)}. TensorBoard reads every such file of a folder in
 * name order.
 *
 * Tags: per epoch (step = the 0-based epoch of metrics.csv) train/loss,
 * train/acc, val/loss, val/acc, lr, images_per_s; per progress tick (step =
 * the global batch, epoch * batches per epoch + batch) tick/train_loss,
 * tick/train_acc, tick/images_per_s.
 *
 * A rerun that resumes a job from its checkpoint first cuts every events
 * file of the folder at its first record past that checkpoint (an epoch
 * record of an epoch not in the checkpoint, a tick past its batch), then
 * opens a new file: the curves go on with no step twice.
 */
#ifndef FOLDLINE_TFEVENTS_H
#define FOLDLINE_TFEVENTS_H

#include <stdint.h>

#include "base/error.h"

typedef struct fl_tfevents fl_tfevents;

/* Cuts dir's events files after the checkpoint (epochs below `epochs_done`
 * and ticks up to global batch `ticks_done` stay), then opens a new file. */
fl_code fl_tfevents_open(const char *dir, int epochs_done, int64_t ticks_done, fl_tfevents **out, fl_error *err);
/* Appends one scalar (wall time now). */
fl_code fl_tfevents_scalar(fl_tfevents *t, const char *tag, int64_t step, double value, fl_error *err);
/* Flushes and fsyncs the file (at every epoch's end). */
fl_code fl_tfevents_sync(fl_tfevents *t, fl_error *err);
void fl_tfevents_close(fl_tfevents *t);

/* CRC-32C (Castagnoli) of n bytes, and TFRecord's mask of it. */
uint32_t fl_crc32c(const void *data, size_t n);
uint32_t fl_crc32c_masked(const void *data, size_t n);

#endif
