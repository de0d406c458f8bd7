/* augment.c -- see augment.h.
 *
 * Two generators per (job seed, epoch, row):
 *   - the row stream (0x61756720, "aug "): two draws per op of the stage,
 *     made whether or not the op fires: does it fire, and the rotation angle;
 *   - op k's own stream (0x6f707320, "ops ", mixed with k): whatever op k
 *     draws beyond that (grid cell stretches, brightness and contrast, hole
 *     positions), and the elastic noise fields, which the bridge generates on
 *     the device from this stream's state (fl_aug_draw.elastic.noise_key).
 * So p, or the parameters of one op, never shift the draws of another. */
#include "trainer/augment.h"

#include <string.h>

#include "trainer/rng.h"

_Static_assert(FL_MAX_OPS == FL_AUG_MAX_OPS, "a stage's ops must fit one fl_augment");
_Static_assert(FL_MAX_GRID_STEPS == FL_GRID_MAX_STEPS, "grid_distortion's num_steps must fit one fl_aug_draw");
_Static_assert(FL_MAX_HOLES == FL_CUTOUT_MAX_HOLES, "cutout's num_holes must fit one fl_aug_draw");

const fl_aug_stage *fl_augment_stage_at(const fl_model_cfg *m, int epoch)
{
    const fl_aug_stage *s = NULL;
    for (int i = 0; i < m->n_stages; i++)
        if (m->stages[i].from_epoch <= epoch)
            s = &m->stages[i];
    return s;
}

/* uniform(-limit, limit) from one draw. */
static double symmetric(fl_rng *r, double limit)
{
    return (2.0 * fl_rng_uniform(r) - 1.0) * limit;
}

/* Fills d for op (which fired) from op k's own stream. */
static void draw_op_params(const fl_aug_op *op, fl_rng *own, fl_aug_draw *d)
{
    switch (op->kind) {
    case FL_OP_ELASTIC:
        d->kind = FL_AUG_ELASTIC;
        d->elastic.alpha = (float)op->alpha;
        d->elastic.sigma = (float)op->sigma;
        d->elastic.noise_key = own->state; /* the fields are this stream's first 2*H*W draws */
        break;
    case FL_OP_GRID_DISTORTION:
        /* albumentations draws every x stretch, then every y stretch. */
        d->kind = FL_AUG_GRID_DISTORTION;
        d->grid.num_steps = op->num_steps;
        for (int j = 0; j <= op->num_steps; j++)
            d->grid.steps_x[j] = (float)(1.0 + symmetric(own, op->distort_limit));
        for (int j = 0; j <= op->num_steps; j++)
            d->grid.steps_y[j] = (float)(1.0 + symmetric(own, op->distort_limit));
        break;
    case FL_OP_BRIGHTNESS_CONTRAST:
        d->kind = FL_AUG_BRIGHTNESS_CONTRAST;
        d->bc.alpha = (float)(1.0 + symmetric(own, op->contrast_limit));
        d->bc.beta = (float)symmetric(own, op->brightness_limit);
        break;
    case FL_OP_CUTOUT:
        d->kind = FL_AUG_CUTOUT;
        d->cutout.n_holes = op->num_holes;
        d->cutout.in_pixels = op->size_in_pixels;
        d->cutout.size = (float)op->size;
        for (int j = 0; j < op->num_holes; j++) {
            d->cutout.pos[j][0] = (float)fl_rng_uniform(own);
            d->cutout.pos[j][1] = (float)fl_rng_uniform(own);
        }
        break;
    default:
        break;
    }
}

int fl_augment_draw(const fl_aug_stage *stage, uint64_t job_seed, int epoch, const int64_t *rows, int n,
                    fl_augment *aug)
{
    memset(aug, 0, sizeof *aug * (size_t)n);
    if (!stage || stage->n_ops == 0)
        return 0;
    const uint64_t own_seed = fl_mix64(job_seed ^ 0x6f707320ull);
    int any = 0;
    for (int i = 0; i < n; i++) {
        fl_rng r = fl_rng_for(job_seed ^ 0x61756720ull, (uint64_t)epoch, (uint64_t)rows[i]);
        aug[i].n_ops = stage->n_ops;
        for (int k = 0; k < stage->n_ops; k++) {
            const fl_aug_op *op = &stage->ops[k];
            fl_aug_draw *d = &aug[i].ops[k];
            double fire = fl_rng_uniform(&r), u = fl_rng_uniform(&r);
            if (fire >= op->p)
                continue;
            any = 1;
            switch (op->kind) {
            case FL_OP_HFLIP:
                d->kind = FL_AUG_HFLIP;
                break;
            case FL_OP_VFLIP:
                d->kind = FL_AUG_VFLIP;
                break;
            case FL_OP_ROTATE:
                d->kind = FL_AUG_ROTATE;
                d->angle_deg = (float)((2.0 * u - 1.0) * op->degrees);
                break;
            default: {
                fl_rng own = fl_rng_for(own_seed ^ (uint64_t)k, (uint64_t)epoch, (uint64_t)rows[i]);
                draw_op_params(op, &own, d);
                break;
            }
            }
        }
    }
    return any;
}
