/* augment.c -- see augment.h. */
#include "trainer/augment.h"

#include <string.h>

#include "trainer/rng.h"

const fl_aug_stage *fl_augment_stage_at(const fl_model_cfg *m, int epoch)
{
    const fl_aug_stage *s = NULL;
    for (int i = 0; i < m->n_stages; i++)
        if (m->stages[i].from_epoch <= epoch)
            s = &m->stages[i];
    return s;
}

int fl_augment_draw(const fl_aug_stage *stage, uint64_t job_seed, int epoch, const int64_t *rows, int n, fl_augment *aug)
{
    memset(aug, 0, sizeof *aug * (size_t)n);
    if (!stage || stage->n_ops == 0)
        return 0;
    int any = 0;
    for (int i = 0; i < n; i++) {
        /* Stream 0x61756720 ("aug "): distinct from the shuffle's draws. */
        fl_rng r = fl_rng_for(job_seed ^ 0x61756720ull, (uint64_t)epoch, (uint64_t)rows[i]);
        for (int k = 0; k < stage->n_ops; k++) {
            const fl_aug_op *op = &stage->ops[k];
            /* Two draws per op whatever fires, so that one op's p does not
             * shift the other ops' randomness. */
            double fire = fl_rng_uniform(&r), u = fl_rng_uniform(&r);
            if (fire >= op->p)
                continue;
            switch (op->kind) {
            case FL_OP_HFLIP:
                aug[i].hflip ^= 1;
                break;
            case FL_OP_VFLIP:
                aug[i].vflip ^= 1;
                break;
            case FL_OP_ROTATE:
                aug[i].angle_deg = (float)((2.0 * u - 1.0) * op->degrees);
                break;
            default:
                break; /* elastic, grid distortion: refused by the config loader */
            }
        }
        any |= aug[i].hflip | aug[i].vflip | (aug[i].angle_deg != 0.0f);
    }
    return any;
}
