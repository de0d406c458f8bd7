/* source.h -- what prep reads: the competition layout (train.csv, test.csv,
 * train/, test/) or the IDX files of the MNIST family, validated whole before
 * any pixel is decoded, so that bad input fails in seconds and names the
 * file and line at fault. */
#ifndef FOLDLINE_SOURCE_H
#define FOLDLINE_SOURCE_H

#include <stdint.h>

#include "dataset/datafile.h"
#include "dataset/idx.h"
#include "dataset/image.h"

/* Targets are class ids below this (a CSV's target sizes a table). */
#define FL_SOURCE_MAX_CLASSES (1 << 20)

typedef struct {
    int64_t n;
    char **paths;    /* (n) image_path as the CSV lists it; "<i>" for IDX rows */
    char **files;    /* (n) file to decode; NULL for IDX sources */
    int32_t *labels; /* (n) target ids, or NULL (unlabelled test set) */
} fl_source_split;

typedef struct {
    int is_idx;
    int num_classes;
    char **classes;           /* (num_classes) */
    fl_source_split split[2]; /* indexed by fl_split_id */
    fl_idx_images idx[2];     /* IDX sources: the pixels */
    char train_csv[4096];     /* for messages: train.csv, or the IDX training labels */
    char idx_labels[2][4096]; /* IDX sources: each split's label file */
    char classes_file[4096];  /* IDX sources: the classes file read, or "" */
    long *class_lines;        /* (num_classes) each name's line in it, or NULL */
} fl_source;

/* Reads and checks SRC. classes_file (may be NULL) names the classes of an IDX
 * source, one per line; SRC/classes.txt is used when present; else the class
 * names are the target ids. */
fl_code fl_source_load(const char *src_dir, const char *classes_file, fl_source *src, fl_error *err);
/* Fails, naming the class, if a class has fewer than `folds` training rows. */
fl_code fl_source_check_folds(const fl_source *src, int folds, fl_error *err);
/* Decodes row `row` of a split to `channels`, at its own size. */
fl_code fl_source_decode(const fl_source *src, fl_split_id split, int64_t row, int channels, fl_image *img,
                         fl_error *err);
void fl_source_free(fl_source *src);

#endif
