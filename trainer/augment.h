/* augment.h -- the curriculum of augmentation stages, drawn per image.
 *
 * A model's `augment` stages say which ops apply from which epoch on (a
 * stage's ops replace the previous stage's). For each (epoch, row) the draws
 * (does op i fire? which angle?) come from a generator seeded by the job
 * seed, the epoch and the row alone, so they are reproducible and independent
 * of batch order and rank. The bridge applies the drawn parameters on the
 * batch tensor (trainer/torch/).
 */
#ifndef FOLDLINE_AUGMENT_H
#define FOLDLINE_AUGMENT_H

#include <stdint.h>

#include "trainer/spec.h"
#include "trainer/torch/bridge.h"

/* The stage in force at epoch (0-based), or NULL when none applies. */
const fl_aug_stage *fl_augment_stage_at(const fl_model_cfg *m, int epoch);

/* Fills aug[i] for rows[i], i < n. Returns 1 if any image is changed. */
int fl_augment_draw(const fl_aug_stage *stage, uint64_t job_seed, int epoch, const int64_t *rows, int n, fl_augment *aug);

#endif
