/* fuzz_image.c -- libFuzzer target: prep's decode path (dataset/image.c and
 * resize.c) on any bytes: decode as JPEG or PNG to grey or RGB (the input's
 * last byte picks), then resize to a small size and lay out planar, as prep
 * does for every image. The fuzz build lowers FL_IMAGE_MAX_PIXELS so that the
 * decompression-bomb limit is exercised without gigabyte allocations. */
#include "dataset/image.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int channels = size && (data[size - 1] & 1) ? 1 : 3;
    fl_error err;
    fl_image img;
    if (fl_image_decode_mem(data, size, "fuzz", channels, &img, &err) != 0)
        return 0;
    if (img.channels != channels || img.width < 1 || img.height < 1)
        abort();
    enum { DW = 7, DH = 5 };
    unsigned char out[DW * DH * 3], planar[DW * DH * 3];
    if (fl_image_resize(img.px, img.width, img.height, channels, out, DW, DH) == 0)
        fl_image_to_planar(out, DH, DW, channels, planar);
    fl_image_release(&img);
    return 0;
}
