/* imagelist.h -- the images `foldline predict` reads: a folder of images, a
 * CSV with an image_path column, or a foldline data file, and their pixels
 * exactly as prep would store them at a given size and channel count.
 *
 *   folder     every .png, .jpg and .jpeg file below it (case-insensitive,
 *              hidden entries skipped), in byte order of the relative path,
 *              which is the image_path
 *   CSV        the image_path column; a relative path is relative to the
 *              CSV's folder; the rows in the CSV's order
 *   data file  (told by HDF5's signature) its /test rows with their paths;
 *              the images as stored, so the size must be the one asked for
 */
#ifndef FOLDLINE_IMAGELIST_H
#define FOLDLINE_IMAGELIST_H

#include <stdint.h>

#include "dataset/datafile.h"
#include "base/error.h"

typedef enum { FL_INPUT_FOLDER, FL_INPUT_CSV, FL_INPUT_DATAFILE } fl_input_kind;

typedef struct {
    fl_input_kind kind;
    char source[4096]; /* INPUT as given */
    int64_t n;
    char **paths;                /* (n) image_path of each row */
    char **files;                /* (n) the file to decode (folder, CSV); NULL for a data file */
    fl_datafile *df;             /* data file */
    int channels, height, width; /* data file: its images' shape */
} fl_image_list;

/* Lists INPUT's images. An empty folder or CSV, or a data file without test
 * rows, is FL_EINPUT with what to do; a missing or unreadable image file is
 * not (fl_image_list_read names it). */
fl_code fl_image_list_open(const char *input, fl_image_list *l, fl_error *err);
void fl_image_list_free(fl_image_list *l);

/* Rows [first, first + count) at (channels, height, width) into chw (count
 * images, planar), as prep stores them: decoded, converted to channels and
 * resized with Pillow's bilinear filter. A row whose file cannot be opened or
 * decoded gets zeros, bad[i] = 1 and its message in bad_err[i] (both may be
 * NULL to fail on it instead). A data file of another shape is FL_EINPUT with
 * a HINT. */
fl_code fl_image_list_read(fl_image_list *l, int64_t first, int64_t count, int channels, int height, int width,
                           uint8_t *chw, int *bad, fl_error *bad_err, fl_error *err);

#endif
