/* image.c -- JPEG (libjpeg-turbo) and PNG (libpng) decoding and channel
 * conversion. See image.h for the pixel semantics; resize is in resize.c. */
#include "dataset/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

void fl_image_release(fl_image *img)
{
    free(img->px);
    img->px = NULL;
}

/* Pillow's RGB -> L: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
static void rgb_to_gray(const unsigned char *rgb, unsigned char *gray, size_t npx)
{
    for (size_t i = 0; i < npx; i++, rgb += 3)
        gray[i] = (unsigned char)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

static void gray_to_rgb(const unsigned char *gray, unsigned char *rgb, size_t npx)
{
    for (size_t i = 0; i < npx; i++, rgb += 3)
        rgb[0] = rgb[1] = rgb[2] = gray[i];
}

/* Converts img (1 or 3 channels) to `channels` in place (reallocating). */
static fl_code image_convert(fl_image *img, int channels, const char *name, fl_error *err)
{
    if (img->channels == channels)
        return FL_OK;
    size_t npx = (size_t)img->width * img->height;
    unsigned char *px = malloc(npx * (size_t)channels);
    if (!px)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory converting %dx%d image", name, img->width, img->height);
    if (channels == 1)
        rgb_to_gray(img->px, px, npx);
    else
        gray_to_rgb(img->px, px, npx);
    free(img->px);
    img->px = px;
    img->channels = channels;
    return FL_OK;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_err_ctx;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err_ctx *ctx = (jpeg_err_ctx *)cinfo->err;
    ctx->mgr.format_message(cinfo, ctx->msg);
    longjmp(ctx->jump, 1);
}

/* Warnings: corrupt entropy data is decoded anyway (as Pillow does), but a
 * file that ends early is refused, as Pillow refuses truncated images, at
 * once: libjpeg would otherwise pad every remaining scanline. */
static void jpeg_on_emit(j_common_ptr cinfo, int level)
{
    jpeg_err_ctx *ctx = (jpeg_err_ctx *)cinfo->err;
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
            ctx->truncated = 1;
            longjmp(ctx->jump, 1);
        }
    }
}

/* FL_EINPUT if w x h is more than FL_IMAGE_MAX_PIXELS. */
static fl_code image_check_size(const char *name, const char *kind, unsigned long w, unsigned long h, fl_error *err)
{
    if ((unsigned long long)w * h <= FL_IMAGE_MAX_PIXELS)
        return FL_OK;
    return fl_fail(err, FL_EINPUT,
                   "%s: %s of %lu x %lu pixels, more than the %d foldline decodes (a decompression bomb?) HINT: "
                   "downscale the file or remove its row from the CSV",
                   name, kind, w, h, FL_IMAGE_MAX_PIXELS);
}

static fl_code decode_jpeg(const unsigned char *data, size_t len, const char *name, fl_image *img, fl_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx jerr;
    /* volatile: modified between setjmp and longjmp. */
    unsigned char *volatile px = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = jpeg_on_error;
    jerr.mgr.emit_message = jpeg_on_emit;
    jerr.truncated = 0;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(px);
        if (jerr.truncated)
            return fl_fail(err, FL_EINPUT,
                           "%s: JPEG file is truncated (it ends before its last scan) HINT: re-copy or re-encode the "
                           "file, or remove its row from the CSV",
                           name);
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot decode JPEG (%s) HINT: re-encode the file or remove its row from the CSV", name,
                       jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    fl_code rc = image_check_size(name, "JPEG", cinfo.image_width, cinfo.image_height, err);
    if (rc) {
        jpeg_destroy_decompress(&cinfo);
        return rc;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else if (cinfo.jpeg_color_space == JCS_GRAYSCALE)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else
        cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, nc = cinfo.output_components;
    size_t stride = (size_t)w * nc;
    px = malloc(stride * h);
    if (!px) {
        jpeg_destroy_decompress(&cinfo);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory for a %dx%d JPEG", name, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    int adobe_inverted = cinfo.saw_Adobe_marker;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (cmyk) {
        /* Adobe writes inverted CMYK; RGB = (255 - C) * (255 - K) / 255 on the uninverted values. */
        size_t npx = (size_t)w * h;
        unsigned char *p = px;
        for (size_t i = 0; i < npx; i++) {
            unsigned c[4];
            for (int k = 0; k < 4; k++)
                c[k] = adobe_inverted ? p[4 * i + k] : 255u - p[4 * i + k];
            for (int k = 0; k < 3; k++)
                p[3 * i + k] = (unsigned char)((c[k] * c[3] + 127) / 255);
        }
        nc = 3;
    }
    img->width = w;
    img->height = h;
    img->channels = nc;
    img->px = px;
    return FL_OK;
}

/* ---- PNG ----------------------------------------------------------------- */

typedef struct {
    const unsigned char *data;
    size_t len, pos;
} png_mem_reader;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    png_mem_reader *r = png_get_io_ptr(png);
    if (n > r->len - r->pos)
        png_error(png, "unexpected end of file");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

typedef struct {
    jmp_buf jump;
    char msg[256];
} png_err_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_err_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    longjmp(ctx->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg;
}

static fl_code decode_png(const unsigned char *data, size_t len, const char *name, fl_image *img, fl_error *err)
{
    png_err_ctx ectx;
    png_mem_reader rd = {data, len, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    unsigned char *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory starting PNG decode", name);
    }
    if (setjmp(ectx.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot decode PNG (%s) HINT: re-encode the file or remove its row from the CSV", name,
                       ectx.msg);
    }
    png_set_read_fn(png, &rd, png_read_mem);
    png_read_info(png, info);
    fl_code rc = image_check_size(name, "PNG", png_get_image_width(png, info), png_get_image_height(png, info), err);
    if (rc) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    int color = png_get_color_type(png, info);
    png_set_strip_16(png);
    png_set_packing(png);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int nc = png_get_channels(png, info);
    if (nc != 1 && nc != 3)
        png_error(png, "unsupported channel layout");
    size_t stride = (size_t)w * nc;
    px = malloc(stride * h);
    rows = malloc(sizeof *rows * (size_t)h);
    if (!px || !rows)
        png_error(png, "out of memory");
    for (int y = 0; y < h; y++)
        rows[y] = px + stride * y;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    img->width = w;
    img->height = h;
    img->channels = nc;
    img->px = px;
    return FL_OK;
}

/* ---- entry points -------------------------------------------------------- */

fl_code fl_image_decode_mem(const unsigned char *data, size_t len, const char *name, int channels, fl_image *img,
                            fl_error *err)
{
    fl_code rc;
    img->px = NULL;
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        rc = decode_jpeg(data, len, name, img, err);
    else if (len >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        rc = decode_png(data, len, name, img, err);
    else
        return fl_fail(err, FL_EINPUT,
                       "%s: not a JPEG or PNG file (%zu bytes) HINT: foldline reads JPEG and PNG; convert the file or "
                       "remove its row from the CSV",
                       name, len);
    if (rc)
        return rc;
    if (img->width <= 0 || img->height <= 0) {
        fl_image_release(img);
        return fl_fail(err, FL_EINPUT, "%s: image has no pixels", name);
    }
    rc = image_convert(img, channels, name, err);
    if (rc)
        fl_image_release(img);
    return rc;
}

fl_code fl_image_decode_file(const char *path, int channels, fl_image *img, fl_error *err)
{
    img->px = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot open image (%s) HINT: the CSV lists it; add the file or remove its row", path,
                       strerror(errno));
    unsigned char *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 18;
            unsigned char *nd = realloc(data, cap);
            if (!nd) {
                free(data);
                fclose(f);
                return fl_fail(err, FL_ENOMEM, "%s: out of memory reading image", path);
            }
            data = nd;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    fl_code rc = bad ? fl_fail(err, FL_EIO, "%s: read error (%s)", path, strerror(errno))
                     : fl_image_decode_mem(data, len, path, channels, img, err);
    free(data);
    return rc;
}

void fl_image_to_planar(const unsigned char *hwc, int h, int w, int ch, unsigned char *chw)
{
    size_t plane = (size_t)h * w;
    if (ch == 1) {
        memcpy(chw, hwc, plane);
        return;
    }
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < ch; c++)
            chw[c * plane + i] = hwc[i * ch + c];
}

fl_code fl_image_fit(const fl_image *img, int height, int width, unsigned char *chw, fl_error *err)
{
    unsigned char *hwc = malloc((size_t)img->channels * height * width);
    fl_code rc = hwc ? fl_image_resize(img->px, img->width, img->height, img->channels, hwc, width, height) : FL_ENOMEM;
    if (!rc)
        fl_image_to_planar(hwc, height, width, img->channels, chw);
    else
        fl_fail(err, rc, "out of memory resizing a %dx%d image", img->width, img->height);
    free(hwc);
    return rc;
}
