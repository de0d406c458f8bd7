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
    if (m->schedule == FL_SCHED_ONECYCLE)
        return fl_schedule_lr_at(m, epoch, 0, 1);
    return m->lr;
}

int fl_schedule_per_step(const fl_model_cfg *m)
{
    return m->schedule == FL_SCHED_ONECYCLE;
}

double fl_schedule_lr_at(const fl_model_cfg *m, int epoch, int64_t step, int64_t steps_per_epoch)
{
    if (!fl_schedule_per_step(m))
        return fl_schedule_lr(m, epoch);
    if (steps_per_epoch < 1)
        steps_per_epoch = 1;
    /* u: the share of training done before this step, in [0, 1) */
    double u = ((double)epoch + (double)step / (double)steps_per_epoch) / (m->epochs > 0 ? m->epochs : 1);
    double start = m->lr / 25.0;
    if (u < m->warmup)
        return start + (m->lr - start) * 0.5 * (1.0 - cos(M_PI * u / m->warmup));
    double t = (u - m->warmup) / (1.0 - m->warmup);
    return m->min_lr + (m->lr - m->min_lr) * 0.5 * (1.0 + cos(M_PI * (t < 1.0 ? t : 1.0)));
}
