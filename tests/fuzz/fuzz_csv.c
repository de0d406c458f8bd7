/* fuzz_csv.c -- libFuzzer target: the CSV reader (dataset/csv.c) on any bytes.
 * Every record is walked and every field of it read, as prep does. */
#include <string.h>

#include "dataset/csv.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    fl_error err;
    fl_csv *csv = NULL;
    if (fl_csv_open(path, &csv, &err) == 0) {
        size_t sum = strlen(fl_csv_header_text(csv));
        int n = fl_csv_columns(csv);
        while (fl_csv_next(csv, &err) == 1) {
            sum += (size_t)fl_csv_line(csv);
            for (int c = 0; c < n; c++)
                sum += strlen(fl_csv_field(csv, c));
        }
        if (sum == 0 && fl_csv_column(csv, "image_path") > n)
            abort(); /* keeps sum alive; never true */
        fl_csv_close(csv);
    } else if (strlen(err.msg) == 0) {
        abort(); /* a failure must say why */
    }
    close(fd);
    return 0;
}
