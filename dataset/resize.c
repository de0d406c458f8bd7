/* resize.c -- antialiased bilinear resize, pixel for pixel as Pillow's
 * Image.resize(size, Image.BILINEAR) (libImaging/Resample.c).
 *
 * Separable: a horizontal pass into an 8-bit intermediate, then a vertical
 * pass. Each output sample is a weighted sum over a window of the source;
 * when downscaling by s the triangle filter is widened to support s, which
 * makes the result an area average instead of a point sample. Weights are
 * normalised in double, then rounded to 22-bit fixed point, as Pillow does,
 * so that the results agree to the grey level.
 */
#include "dataset/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

typedef struct {
    int ksize;   /* weights per output sample (stride of kk) */
    int *bounds; /* (out, 2): first source index, count */
    int *kk;     /* (out, ksize): fixed-point weights */
} resample_coeffs;

static double bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void coeffs_free(resample_coeffs *c)
{
    free(c->bounds);
    free(c->kk);
}

static int coeffs_compute(int in_size, int out_size, resample_coeffs *c)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = malloc(sizeof *pre * (size_t)out_size * ksize);
    c->ksize = ksize;
    c->bounds = malloc(sizeof *c->bounds * (size_t)out_size * 2);
    c->kk = malloc(sizeof *c->kk * (size_t)out_size * ksize);
    if (!pre || !c->bounds || !c->kk) {
        free(pre);
        coeffs_free(c);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            k[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        c->kk[i] = (int)(pre[i] < 0 ? -0.5 + pre[i] * (1 << PRECISION_BITS) : 0.5 + pre[i] * (1 << PRECISION_BITS));
    free(pre);
    return 0;
}

static unsigned char clip8(int v)
{
    if (v >= (1 << PRECISION_BITS << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (unsigned char)(v >> PRECISION_BITS);
}

/* (h, sw, ch) -> (h, dw, ch). The taps of one output pixel are contiguous
 * in the source row; grey and RGB get their own loops so that the channel
 * sums stay in registers. */
static void pass_horizontal(const unsigned char *src, int sw, int h, int ch, unsigned char *dst, int dw,
                            const resample_coeffs *c)
{
    const int half = 1 << (PRECISION_BITS - 1);
    for (int y = 0; y < h; y++) {
        const unsigned char *row = src + (size_t)y * sw * ch;
        unsigned char *out = dst + (size_t)y * dw * ch;
        for (int xx = 0; xx < dw; xx++) {
            int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int *k = c->kk + (size_t)xx * c->ksize;
            const unsigned char *p = row + (size_t)xmin * ch;
            if (ch == 3) {
                int s0 = half, s1 = half, s2 = half;
                for (int x = 0; x < xmax; x++, p += 3) {
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                out[xx * 3] = clip8(s0);
                out[xx * 3 + 1] = clip8(s1);
                out[xx * 3 + 2] = clip8(s2);
            } else if (ch == 1) {
                int s0 = half;
                for (int x = 0; x < xmax; x++)
                    s0 += p[x] * k[x];
                out[xx] = clip8(s0);
            } else {
                for (int b = 0; b < ch; b++) {
                    int ss = half;
                    for (int x = 0; x < xmax; x++)
                        ss += p[x * ch + b] * k[x];
                    out[xx * ch + b] = clip8(ss);
                }
            }
        }
    }
}

/* (sh, w, ch) -> (dh, w, ch). Whole rows are accumulated into an int row
 * (acc, w*ch entries), which the compiler vectorises. */
static void pass_vertical(const unsigned char *src, int w, int ch, unsigned char *dst, int dh, const resample_coeffs *c,
                          int *acc)
{
    size_t stride = (size_t)w * ch;
    for (int yy = 0; yy < dh; yy++) {
        int ymin = c->bounds[yy * 2], ymax = c->bounds[yy * 2 + 1];
        const int *k = c->kk + (size_t)yy * c->ksize;
        for (size_t i = 0; i < stride; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ymax; y++) {
            const unsigned char *row = src + (size_t)(y + ymin) * stride;
            int ky = k[y];
            for (size_t i = 0; i < stride; i++)
                acc[i] += row[i] * ky;
        }
        unsigned char *out = dst + yy * stride;
        for (size_t i = 0; i < stride; i++)
            out[i] = clip8(acc[i]);
    }
}

fl_code fl_image_resize(const unsigned char *src, int sw, int sh, int ch, unsigned char *dst, int dw, int dh)
{
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * sh * ch);
        return FL_OK;
    }
    resample_coeffs hc = {0}, vc = {0};
    unsigned char *tmp = NULL;
    int *acc = NULL;
    fl_code rc = FL_ENOMEM;
    if (sw != dw && coeffs_compute(sw, dw, &hc))
        goto done;
    if (sh != dh && (coeffs_compute(sh, dh, &vc) || !(acc = malloc(sizeof *acc * (size_t)dw * ch))))
        goto done;
    if (sw == dw) {
        pass_vertical(src, sw, ch, dst, dh, &vc, acc);
    } else if (sh == dh) {
        pass_horizontal(src, sw, sh, ch, dst, dw, &hc);
    } else {
        if (!(tmp = malloc((size_t)dw * sh * ch)))
            goto done;
        pass_horizontal(src, sw, sh, ch, tmp, dw, &hc);
        pass_vertical(tmp, dw, ch, dst, dh, &vc, acc);
    }
    rc = FL_OK;
done:
    free(tmp);
    free(acc);
    coeffs_free(&hc);
    coeffs_free(&vc);
    return rc;
}
