/* fuzz_idx.c -- libFuzzer target: the IDX reader (dataset/idx.c) on any bytes,
 * read both as an idx3 image file and as an idx1 label file. zlib reads plain
 * and gzip input alike, so gzip headers are fuzzed as well. */
#include "dataset/idx.h"
#include "fuzz_common.h"

volatile unsigned fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    fl_error err;
    fl_idx_images im;
    if (fl_idx_read_images(path, &im, &err) == 0) {
        /* every pixel the header promised is there */
        size_t n = (size_t)im.count * im.rows * im.cols;
        unsigned sum = im.pixels[n - 1];
        for (size_t i = 0; i < n; i += 4093)
            sum += im.pixels[i];
        fuzz_sink = sum;
        fl_idx_images_free(&im);
    }
    int count = 0;
    int32_t *labels = NULL;
    if (fl_idx_read_labels(path, &count, &labels, &err) == 0) {
        for (int i = 0; i < count; i++)
            if (labels[i] < 0 || labels[i] > 255)
                abort();
        free(labels);
    }
    close(fd);
    return 0;
}
