/* datafile_priv.h -- what datafile.c (layout, writing, reading) and
 * datafile_check.c (the integrity checks) share. Not a public API. */
#ifndef FOLDLINE_DATAFILE_PRIV_H
#define FOLDLINE_DATAFILE_PRIV_H

#include <stdint.h>

#include "dataset/datafile.h"
#include "dataset/h5util.h"

extern const char *const fl_datafile_split_group[2]; /* "train", "test" */

struct fl_datafile {
    char *path;
    hid_t file;
    hid_t images[2]; /* /train/images, /test/images */
    fl_data_info info;
};

/* 1 when the images dataset has HDF5's Fletcher-32 filter (every chunk
 * carries a checksum that HDF5 verifies on reading it), else 0. */
int datafile_images_checksummed(hid_t images);

/* The message for a failed H5Fopen of path: "truncated (N of M bytes)" when
 * HDF5 found the file shorter than its superblock says, else HDF5's reason. */
fl_code datafile_open_failed(const char *path, fl_error *err);

#endif
