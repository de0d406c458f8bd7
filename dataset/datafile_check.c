/* datafile_check.c -- the data file's integrity checks (see datafile.h):
 * the verification pass over the image checksums, which datasets have them,
 * and what a failed open means.
 *
 * The design, in three layers. (1) The seal in the user block (h5seal.c)
 * covers the file up to its first pixel: the attributes, classes, labels,
 * folds and paths, which HDF5 stores without checksums, are verified at every
 * open before HDF5 parses them (a few percent of the file: for a million
 * images, the paths and labels are some 50 MB, read in well under a second,
 * next to the pixels' gigabytes). The seal also records the length: a truncated copy is named at
 * open. (2) HDF5's own structures after that point (chunk index, object
 * headers) carry checksums in the 1.10 format. (3) Each image chunk carries
 * HDF5's Fletcher-32 checksum, verified whenever it is read: measured on
 * 3x224x224 images from the page cache, 150 us per image read instead of 80,
 * hidden by the loader's prefetch thread. A full pass over the pixels reads
 * the whole file, so it is a separate call that `inspect` and `train`
 * (data.verify = "full") make before any work starts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/datafile_priv.h"

int datafile_images_checksummed(hid_t images)
{
    hid_t dcpl = H5Dget_create_plist(images);
    if (dcpl < 0)
        return 0;
    unsigned flags;
    size_t nelmts = 0;
    unsigned config;
    int yes = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelmts, NULL, 0, NULL, &config) >= 0;
    H5Pclose(dcpl);
    H5Eclear2(H5E_DEFAULT);
    return yes;
}

fl_code datafile_open_failed(const char *path, fl_error *err)
{
    char why[256];
    fl_h5_last_error(why, sizeof why);
    unsigned long long eof, base, stored;
    const char *t = strstr(why, "truncated file");
    if (t &&
        sscanf(t, "truncated file: eof = %llu, sblock->base_addr = %llu, stored_eof = %llu", &eof, &base, &stored) == 3)
        return fl_fail(err, FL_EINPUT,
                       "%s: truncated: %llu bytes, but it was written with %llu HINT: the copy or download is "
                       "incomplete; copy it again or rerun foldline prep",
                       path, eof, stored);
    return fl_fail(err, FL_EINPUT,
                   "%s: cannot open as HDF5 (HDF5: %s) HINT: the file is damaged; copy it again or rerun foldline prep",
                   path, why);
}

fl_code fl_datafile_verify_images(fl_datafile *df, int part, int parts, int64_t *checked, fl_error *err)
{
    *checked = 0;
    const fl_data_info *in = &df->info;
    if (!(in->checks & FL_DATA_CHECK_PIXELS))
        return FL_OK;
    size_t bytes = (size_t)in->channels * in->height * in->width;
    int64_t run = (int64_t)((1u << 20) / bytes); /* rows per read: about 1 MB */
    run = run < 1 ? 1 : run > 64 ? 64 : run;
    uint8_t *buf = malloc(bytes * (size_t)run);
    if (!buf)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int s = 0; s < 2; s++) {
        int64_t n = s == 0 ? in->n_train : in->n_test;
        int64_t lo = n * part / parts, hi = n * (part + 1) / parts;
        for (int64_t r = lo; r < hi; r += run) {
            int64_t c = hi - r < run ? hi - r : run;
            fl_code rc = fl_datafile_read_images(df, (fl_split_id)s, r, c, buf, err); /* names a bad row */
            if (rc) {
                free(buf);
                return rc;
            }
            *checked += c;
        }
    }
    free(buf);
    return FL_OK;
}
