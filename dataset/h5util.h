/* h5util.h -- the small HDF5 helpers that foldline's two file formats (the
 * data file, datafile.c, and the predictions file, preds.c) share. Internal
 * to dataset/: it exposes HDF5 types. */
#ifndef FOLDLINE_H5UTIL_H
#define FOLDLINE_H5UTIL_H

#include <stdint.h>

#include <hdf5.h>

#include "dist/error.h"

/* FL_EIO with "path: what (HDF5: innermost reason)". */
fl_code fl_h5_fail(fl_error *err, const char *path, const char *what);

/* Variable-length UTF-8 strings (what h5py reads as str). Close with H5Tclose. */
hid_t fl_h5_string_type(void);

/* Scalar attributes; 0 on success, -1 on failure. wide: int64, else int32. */
int fl_h5_attr_int(hid_t obj, const char *name, int64_t v, int wide);
int fl_h5_attr_str(hid_t obj, const char *name, const char *s);
/* -1 if absent or unreadable. */
int fl_h5_attr_read_int(hid_t obj, const char *name, int64_t *v);
/* Fixed or variable length; -1 if absent or not a string, -2 if cut to fit n. */
int fl_h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t n);

/* A dataset of rank 1 (n) or 2 (n, cols) written at once, contiguous (n may be 0). */
int fl_h5_write_nd(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, int64_t n, int64_t cols,
                   const void *data);
/* Shape of a dataset of rank `rank` (1 or 2); -1 if absent or of another rank. */
int fl_h5_shape(hid_t loc, const char *name, int rank, int64_t dims[2]);
/* Reads a whole dataset; 0 or -1. */
int fl_h5_read_all(hid_t loc, const char *name, hid_t mem_type, void *out);

/* Opens read-only without file locking where HDF5 allows it (>= 1.10.7), so
 * readers on NFS or Lustre never trip over locks. */
hid_t fl_h5_open_readonly(const char *path);

#endif
