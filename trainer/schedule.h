/* schedule.h -- the learning rate of an epoch, stepped once per epoch as in
 * the seed recipe (StepLR.step() after every epoch), or of a step (onecycle,
 * which short runs need: a few epochs are too coarse to warm up and anneal). */
#ifndef FOLDLINE_SCHEDULE_H
#define FOLDLINE_SCHEDULE_H

#include <stdint.h>

#include "trainer/spec.h"

/* lr for epoch e (0-based):
 *   none:   lr
 *   step:   lr * gamma^floor(e / step_size)
 *   cosine: warm-up lr * (e + 1) / warmup_epochs for e < warmup_epochs, then
 *           min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2 with
 *             t = (e - warmup_epochs) / (epochs - warmup_epochs)
 *   onecycle: the lr of the epoch's first step (fl_schedule_lr_at). */
double fl_schedule_lr(const fl_model_cfg *m, int epoch);

/* 1 when the lr changes every step (onecycle), else 0 (once per epoch). */
int fl_schedule_per_step(const fl_model_cfg *m);

/* lr for step `step` (0-based) of epoch e, an epoch having steps_per_epoch
 * steps. onecycle (as torch's OneCycleLR: cosine both ways, from lr / 25):
 * with u = (e + step / steps_per_epoch) / epochs, the share of training done,
 * lr / 25 + (lr - lr / 25) * (1 - cos(pi * u / warmup)) / 2 while u < warmup,
 * then min_lr + (lr - min_lr) * (1 + cos(pi * (u - warmup) / (1 - warmup))) / 2.
 * Other schedules: fl_schedule_lr(m, e). */
double fl_schedule_lr_at(const fl_model_cfg *m, int epoch, int64_t step, int64_t steps_per_epoch);

#endif
