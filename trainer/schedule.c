/* schedule.c -- see schedule.h. */
#include "trainer/schedule.h"

#include <math.h>

double fl_schedule_lr(const fl_model_cfg *m, int epoch)
{
    if (m->schedule == FL_SCHED_STEP)
        return m->lr * pow(m->gamma, epoch / (m->step_size > 0 ? m->step_size : 1));
    if (m->schedule == FL_SCHED_COSINE) {
        if (epoch < m->warmup_epochs)
            return m->lr * (epoch + 1) / m->warmup_epochs;
        int span = m->epochs - m->warmup_epochs;
        double t = span > 0 ? (double)(epoch - m->warmup_epochs) / span : 0.0;
        return m->min_lr + (m->lr - m->min_lr) * 0.5 * (1.0 + cos(M_PI * t));
    }
    return m->lr;
}
