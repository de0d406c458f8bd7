/* idx.h -- the IDX files of the MNIST family (idx3 images, idx1 labels),
 * plain or gzip-compressed, as Debian's dataset-fashion-mnist ships them. */
#ifndef FOLDLINE_IDX_H
#define FOLDLINE_IDX_H

#include <stdint.h>

#include "base/error.h"

typedef struct {
    int count, rows, cols;
    unsigned char *pixels; /* (count, rows, cols), 8-bit grey */
} fl_idx_images;

fl_code fl_idx_read_images(const char *path, fl_idx_images *out, fl_error *err);
/* labels: (count) values 0..255, malloc'ed */
fl_code fl_idx_read_labels(const char *path, int *count, int32_t **labels, fl_error *err);
void fl_idx_images_free(fl_idx_images *im);

/* The first of "<dir>/<stem>" and "<dir>/<stem>.gz" that exists, into buf;
 * returns 0 if neither does. */
int fl_idx_find(const char *dir, const char *stem, char *buf, size_t n);

#endif
