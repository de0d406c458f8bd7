/* schedule.h -- the learning rate of an epoch, stepped once per epoch as in
 * the seed recipe (StepLR.step() after every epoch). */
#ifndef FOLDLINE_SCHEDULE_H
#define FOLDLINE_SCHEDULE_H

#include "trainer/spec.h"

/* lr for epoch e (0-based):
 *   none:   lr
 *   step:   lr * gamma^floor(e / step_size)
 *   cosine: warm-up lr * (e + 1) / warmup_epochs for e < warmup_epochs, then
 *           min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2 with
 *           t = (e - warmup_epochs) / (epochs - warmup_epochs). */
double fl_schedule_lr(const fl_model_cfg *m, int epoch);

#endif
