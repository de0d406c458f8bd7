/* image.h -- decoding JPEG and PNG files to 8-bit pixels, channel conversion,
 * and the antialiased bilinear resize that prep applies.
 *
 * The pixel semantics follow Pillow, the library the competition's recipes
 * used: decode to "L" or "RGB", convert('RGB') replicates grey, convert('L')
 * uses ITU-R 601-2 luma in fixed point, and resize(BILINEAR) is a separable
 * triangle filter widened by the downscale factor (so it averages the source
 * area instead of sampling it), with 22-bit fixed-point weights.
 */
#ifndef FOLDLINE_IMAGE_H
#define FOLDLINE_IMAGE_H

#include "base/error.h"

/* Images of more pixels are refused from their header, before any pixel
 * memory is allocated, as Pillow refuses them (its DecompressionBombError
 * above 2 x Image.MAX_IMAGE_PIXELS): a file of a few hundred bytes can declare
 * 65535 x 65535 pixels. The fuzz build lowers it. */
#ifndef FL_IMAGE_MAX_PIXELS
#define FL_IMAGE_MAX_PIXELS 178956970
#endif

/* An 8-bit image, pixels interleaved: (H, W, channels). */
typedef struct {
    int width, height, channels;
    unsigned char *px;
} fl_image;

/* Decodes a JPEG or PNG file (told apart by its first bytes) and converts it
 * to `channels` (1 or 3). Alpha is dropped, palettes are expanded, 16-bit
 * samples keep their high byte. On failure the message names the path. */
fl_code fl_image_decode_file(const char *path, int channels, fl_image *img, fl_error *err);

/* The same for an image already in memory; `name` is used in messages. */
fl_code fl_image_decode_mem(const unsigned char *data, size_t len, const char *name, int channels, fl_image *img,
                            fl_error *err);

void fl_image_release(fl_image *img);

/* Resizes src (sh, sw, ch) into dst (dh, dw, ch), both interleaved, like
 * Pillow's Image.resize((dw, dh), BILINEAR). Returns FL_ENOMEM or FL_OK. */
fl_code fl_image_resize(const unsigned char *src, int sw, int sh, int ch, unsigned char *dst, int dw, int dh);

/* Copies an interleaved (H, W, ch) image into planar (ch, H, W) order. */
void fl_image_to_planar(const unsigned char *hwc, int h, int w, int ch, unsigned char *chw);

/* What prep stores of a decoded image: img resized (fl_image_resize) to
 * height x width and written planar (img->channels, height, width) into chw.
 * prep and predict both go through it, so that predict sees the pixels a
 * data file would hold. FL_ENOMEM (message set) or FL_OK. */
fl_code fl_image_fit(const fl_image *img, int height, int width, unsigned char *chw, fl_error *err);

#endif
