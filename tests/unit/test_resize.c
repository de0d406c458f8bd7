/* test_resize.c -- properties of the antialiased resize that hold whatever
 * the reference (Pillow agreement is checked in tests/prep/test_pixels.py). */
#include <stdlib.h>

#include "check.h"
#include "dataset/image.h"

static void test_same_size_is_an_exact_copy(void)
{
    unsigned char src[5 * 4 * 3], dst[5 * 4 * 3];
    for (int i = 0; i < (int)sizeof src; i++)
        src[i] = (unsigned char)(i * 37);
    CHECK(fl_image_resize(src, 5, 4, 3, dst, 5, 4) == FL_OK);
    CHECK(memcmp(src, dst, sizeof src) == 0);
}

static void test_constant_image_stays_constant(void)
{
    int sw = 97, sh = 61;
    unsigned char *src = malloc((size_t)sw * sh), dst[33 * 47];
    memset(src, 200, (size_t)sw * sh);
    CHECK(fl_image_resize(src, sw, sh, 1, dst, 47, 33) == FL_OK);
    for (int i = 0; i < 33 * 47; i++)
        CHECK(dst[i] == 200);
    free(src);
}

static void test_downscale_averages_the_area(void)
{
    /* A one-pixel checkerboard shrunk 4x is mid-grey, not black or white. */
    int s = 64, d = 16;
    unsigned char *src = malloc((size_t)s * s), dst[16 * 16];
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++)
            src[y * s + x] = ((x + y) & 1) ? 255 : 0;
    CHECK(fl_image_resize(src, s, s, 1, dst, d, d) == FL_OK);
    for (int i = 0; i < d * d; i++)
        CHECK(dst[i] >= 120 && dst[i] <= 135);
    free(src);
}

static void test_channels_do_not_mix(void)
{
    int sw = 30, sh = 20;
    unsigned char *src = malloc((size_t)sw * sh * 3), dst[7 * 9 * 3];
    for (int i = 0; i < sw * sh; i++) {
        src[i * 3] = 10;
        src[i * 3 + 1] = 128;
        src[i * 3 + 2] = 250;
    }
    CHECK(fl_image_resize(src, sw, sh, 3, dst, 9, 7) == FL_OK);
    for (int i = 0; i < 7 * 9; i++)
        CHECK(dst[i * 3] == 10 && dst[i * 3 + 1] == 128 && dst[i * 3 + 2] == 250);
    free(src);
}

static void test_planar_copy_orders_channels(void)
{
    unsigned char hwc[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, chw[12];
    fl_image_to_planar(hwc, 2, 2, 3, chw);
    unsigned char want[12] = {1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12};
    CHECK(memcmp(chw, want, 12) == 0);
}

int main(void)
{
    RUN(test_same_size_is_an_exact_copy);
    RUN(test_constant_image_stays_constant);
    RUN(test_downscale_averages_the_area);
    RUN(test_channels_do_not_mix);
    RUN(test_planar_copy_orders_channels);
    return check_summary();
}
