/* h5util.h -- the small HDF5 helpers that foldline's two file formats (the
 * data file, datafile.c, and the predictions file, preds.c) share. Internal
 * to dataset/: it exposes HDF5 types. */
#ifndef FOLDLINE_H5UTIL_H
#define FOLDLINE_H5UTIL_H

#include <stdint.h>

#include <hdf5.h>

#include "base/error.h"

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

/* A file access property list without HDF5's file locking where the library
 * can turn it off (1.10.7 and later, 1.12.1 and later), so that files on NFS
 * or Lustre never trip over locks. Close with H5Pclose. */
hid_t fl_h5_fapl(void);
/* Opens read-only (H5Fopen) or creates, truncating (H5Fcreate), with
 * fl_h5_fapl; on failure HDF5's error stack still says why. Created files
 * have a user block for fl_h5_seal and use the 1.10 file format, whose
 * superblock, object headers and chunk indexes carry checksums (readable by
 * HDF5 1.10 and later). */
hid_t fl_h5_open_readonly(const char *path);
hid_t fl_h5_create(const char *path);
/* Opens a file fl_h5_create made, closed since, to write more to it. */
hid_t fl_h5_reopen_rdwr(const char *path);

/* One process-wide lock around HDF5 (a serial build, not thread-safe): held
 * by the loader's prefetch thread for each read and by whatever else calls
 * HDF5 while that thread may run (the feature cache). */
void fl_h5_lock(void);
void fl_h5_unlock(void);

/* ---- seals (h5seal.c): a checksum of a file's metadata in its user block -- */

#define FL_H5_USERBLOCK 4096

/* Seals a file fl_h5_create made, after H5Fclose: records its length and the
 * CRC-32 of its bytes from the user block's end to covered_end (0: the end
 * of the file). name is the file in messages. */
fl_code fl_h5_seal(const char *path, const char *name, uint64_t covered_end, fl_error *err);
/* Before HDF5 opens path: *sealed = 0 and FL_OK when it has no seal (another
 * tool or an older foldline wrote it); else FL_OK only if its length and
 * checksum match, with a one-line error naming a truncated, extended or
 * corrupt file otherwise. crc (may be NULL) gets the checksum the seal
 * records when it matches (0 without a seal). */
fl_code fl_h5_check_seal(const char *path, int *sealed, uint32_t *crc, fl_error *err);

/* The checksum of HDF5's Fletcher-32 filter, for writing filtered chunks
 * directly (H5Dwrite_chunk): the chunk is the data followed by this value,
 * little-endian. */
uint32_t fl_h5_fletcher32(const void *data, size_t len);

#endif
