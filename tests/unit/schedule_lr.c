/* schedule_lr.c -- the learning rate foldline sets before each step, for
 * tests/torch/test_onecycle.py to compare with torch's OneCycleLR:
 *     schedule_lr TYPE LR WARMUP MIN_LR EPOCHS STEPS_PER_EPOCH
 * prints one line per step (epoch by epoch): fl_schedule_lr_at's value, in
 * full precision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/schedule.h"

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: schedule_lr TYPE LR WARMUP MIN_LR EPOCHS STEPS_PER_EPOCH\n");
        return 2;
    }
    static fl_model_cfg m; /* zeroed: only the schedule's fields matter */
    int type = fl_sched_parse(argv[1]);
    if (type < 0) {
        fprintf(stderr, "schedule_lr: unknown schedule type %s\n", argv[1]);
        return 2;
    }
    m.schedule = (fl_sched)type;
    m.lr = atof(argv[2]);
    m.warmup = atof(argv[3]);
    m.min_lr = atof(argv[4]);
    m.epochs = atoi(argv[5]);
    int64_t steps = atoll(argv[6]);
    for (int e = 0; e < m.epochs; e++)
        for (int64_t s = 0; s < steps; s++)
            printf("%.17g\n", fl_schedule_lr_at(&m, e, s, steps));
    return 0;
}
