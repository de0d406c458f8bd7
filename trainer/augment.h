/* augment.h -- the curriculum of augmentation stages, drawn per image.
 *
 * A model's `augment` stages say which ops apply from which epoch on (a
 * stage's ops replace the previous stage's). For each (epoch, row) the draws
 * (does op k fire? which angle, which cell stretches, which noise?) come from
 * generators seeded by the job seed, the epoch, the row and, for what an op
 * draws beyond firing, the op's index alone, so they are reproducible,
 * independent of batch order and rank, and one op's draws never shift
 * another's. The bridge applies the drawn parameters on the batch tensor
 * (trainer/torch/, fl_augment in bridge.h says what each one means).
 */
#ifndef FOLDLINE_AUGMENT_H
#define FOLDLINE_AUGMENT_H

#include <stdint.h>

#include "trainer/spec.h"
#include "trainer/torch/bridge.h"

/* The stage in force at epoch (0-based), or NULL when none applies. */
const fl_aug_stage *fl_augment_stage_at(const fl_model_cfg *m, int epoch);

/* Fills aug[i] for rows[i], i < n: aug[i].ops[k] is the stage's op k, kind
 * FL_AUG_NONE where it did not fire. Returns 1 if any op fired anywhere. */
int fl_augment_draw(const fl_aug_stage *stage, uint64_t job_seed, int epoch, const int64_t *rows, int n,
                    fl_augment *aug);

#endif
