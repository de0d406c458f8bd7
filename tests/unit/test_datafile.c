/* test_datafile.c -- the data file's integrity: what prep writes reads back
 * exactly, and a corrupt byte anywhere in the file is either refused (at open,
 * or by the image checksum pass) or changes nothing foldline reads. The last
 * is checked exhaustively: one flipped bit at every byte offset of a small
 * file, the way SQLite tests its file format against corruption. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "dataset/datafile.h"

#define NTR 6
#define NTE 3
#define IMG 6 /* 1 x 2 x 3 */

static char path[600], bad_path[700];

static void make_file(const char *p)
{
    char *classes[3] = {"cat", "dog", "bird"};
    fl_data_info in = {.n_train = NTR,
                       .n_test = NTE,
                       .num_classes = 3,
                       .folds = 2,
                       .height = 2,
                       .width = 3,
                       .channels = 1,
                       .fold_seed = 5,
                       .classes = classes};
    int32_t labels[NTR] = {0, 1, 2, 2, 1, 0}, fold[NTR] = {0, 1, 0, 1, 0, 1}, test_labels[NTE] = {2, 0, 1};
    char *train_paths[NTR] = {"a/0.png", "a/1.png", "b/2.png", "b/3.png", "c/4.png", "c/5.png"};
    char *test_paths[NTE] = {"t0.jpg", "t1.jpg", "t2.jpg"};
    uint8_t px[NTR * IMG];
    for (int i = 0; i < NTR * IMG; i++)
        px[i] = (uint8_t)(i * 37 + 11);
    fl_datafile_writer *w;
    fl_error err;
    if (fl_datafile_create(p, NULL, &in, &w, &err) ||
        fl_datafile_write_rows(w, FL_SPLIT_TRAIN, labels, fold, train_paths, &err) ||
        fl_datafile_write_rows(w, FL_SPLIT_TEST, test_labels, NULL, test_paths, &err) ||
        fl_datafile_write_images(w, FL_SPLIT_TRAIN, 0, NTR, px, &err) ||
        fl_datafile_write_images(w, FL_SPLIT_TEST, 0, NTE, px + 7, &err) || fl_datafile_finish(w, &err)) {
        fprintf(stderr, "make_file: %s\n", err.msg);
        abort();
    }
}

/* Everything foldline reads from a data file, as one comparable record. */
typedef struct {
    fl_data_info info;
    char classes[3][16];
    int32_t labels[NTR], fold[NTR], test_labels[NTE];
    char paths[NTR + NTE][16];
    uint8_t px[(NTR + NTE) * IMG];
} content;

/* 0 when df reads as a file shaped like make_file's, filling c. */
static int read_all(fl_datafile *df, content *c)
{
    memset(c, 0, sizeof *c);
    c->info = *fl_datafile_info(df);
    fl_data_info *in = &c->info;
    if (in->n_train != NTR || in->n_test != NTE || in->num_classes != 3 || in->channels * in->height * in->width != IMG)
        return -1;
    for (int k = 0; k < 3; k++)
        snprintf(c->classes[k], sizeof c->classes[k], "%s", in->classes[k]);
    in->classes = NULL;
    fl_error err;
    char **tr = NULL, **te = NULL;
    int bad =
        fl_datafile_read_labels(df, FL_SPLIT_TRAIN, c->labels, &err) || fl_datafile_read_folds(df, c->fold, &err) ||
        (in->has_test_labels && fl_datafile_read_labels(df, FL_SPLIT_TEST, c->test_labels, &err)) ||
        fl_datafile_read_paths(df, FL_SPLIT_TRAIN, &tr, &err) || fl_datafile_read_paths(df, FL_SPLIT_TEST, &te, &err) ||
        fl_datafile_read_images(df, FL_SPLIT_TRAIN, 0, NTR, c->px, &err) ||
        fl_datafile_read_images(df, FL_SPLIT_TEST, 0, NTE, c->px + NTR * IMG, &err);
    for (int i = 0; !bad && i < NTR + NTE; i++)
        snprintf(c->paths[i], sizeof c->paths[i], "%s", i < NTR ? tr[i] : te[i - NTR]);
    fl_datafile_free_paths(tr, tr ? NTR : 0);
    fl_datafile_free_paths(te, te ? NTE : 0);
    return bad ? -1 : 0;
}

static void test_written_file_reads_back_with_both_checks(void)
{
    fl_datafile *df;
    fl_error err;
    CHECK(fl_datafile_open(path, &df, &err) == FL_OK);
    if (!df)
        return;
    const fl_data_info *in = fl_datafile_info(df);
    CHECK(in->checks == (FL_DATA_CHECK_SEAL | FL_DATA_CHECK_PIXELS));
    int64_t n = -1;
    CHECK(fl_datafile_verify_images(df, 0, 1, &n, &err) == FL_OK && n == NTR + NTE);
    int64_t a = 0, b = 0; /* two ranks' shares tile the rows */
    CHECK(fl_datafile_verify_images(df, 0, 2, &a, &err) == FL_OK &&
          fl_datafile_verify_images(df, 1, 2, &b, &err) == FL_OK);
    CHECK(a + b == NTR + NTE);
    content c;
    CHECK(read_all(df, &c) == 0);
    CHECK(c.labels[2] == 2 && c.fold[1] == 1 && c.test_labels[0] == 2);
    CHECK_STR(c.paths[4], "c/4.png");
    CHECK_STR(c.classes[2], "bird");
    CHECK(c.px[0] == 11 && c.px[NTR * IMG] == (uint8_t)(7 * 37 + 11));
    fl_datafile_close(df);
}

static void test_truncated_file_is_named_as_truncated(void)
{
    struct stat st;
    stat(path, &st);
    int in = open(path, O_RDONLY), out = open(bad_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *buf = malloc((size_t)st.st_size);
    CHECK(read(in, buf, (size_t)st.st_size) == st.st_size);
    CHECK(write(out, buf, (size_t)st.st_size - 10) == st.st_size - 10);
    close(in);
    close(out);
    free(buf);
    fl_datafile *df;
    fl_error err;
    CHECK(fl_datafile_open(bad_path, &df, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "truncated") != NULL);
    CHECK(strstr(err.msg, bad_path) != NULL);
}

/* Opens bad_path, verifies its images and reads it: 0 refused, 1 read
 * unchanged (harmless), 2 read different content without an error. */
static int flip_outcome(const content *ref, size_t off)
{
    fl_datafile *df;
    fl_error err;
    content got;
    int64_t n;
    if (fl_datafile_open(bad_path, &df, &err))
        return err.msg[0] ? 0 : 2; /* a refusal must say why */
    int r = 0;
    if (fl_datafile_verify_images(df, 0, 1, &n, &err))
        r = 0;
    else if (read_all(df, &got) != 0) {
        fprintf(stderr, "offset %zu: verified, then a read failed\n", off);
        r = 2; /* too late: training would have started */
    } else if (memcmp(&got, ref, sizeof got) != 0) {
        fprintf(stderr, "offset %zu: read back different content without an error\n", off);
        r = 2;
    } else {
        r = 1;
    }
    fl_datafile_close(df);
    return r;
}

/* A crash or a hang (HDF5 on corrupt metadata) names the offset, then fails. */
static char crash_note[64];
static void on_crash(int sig)
{
    (void)sig;
    ssize_t w = write(2, crash_note, strlen(crash_note));
    (void)w;
    _exit(1);
}

/* Every byte of the file, one bit flipped: refused, or read unchanged. The
 * user block is covered by one CRC, so only its first and last bytes are
 * tried there. */
static void test_no_flipped_bit_goes_unnoticed(void)
{
    struct stat st;
    CHECK(stat(path, &st) == 0);
    size_t size = (size_t)st.st_size;
    uint8_t *orig = malloc(size);
    int fd = open(path, O_RDONLY);
    CHECK(read(fd, orig, size) == (ssize_t)size);
    close(fd);
    fl_datafile *df;
    fl_error err;
    content ref;
    if (fl_datafile_open(path, &df, &err) || read_all(df, &ref))
        abort();
    fl_datafile_close(df);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGALRM, on_crash);
    int count[3] = {0, 0, 0}; /* refused, harmless, unnoticed */
    fd = open(bad_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (write(fd, orig, size) != (ssize_t)size)
        abort();
    for (size_t off = 0; off < size; off++) {
        if (off == 64)
            off = 4092; /* the rest of the user block: zeros under its CRC */
        uint8_t flipped = orig[off] ^ (uint8_t)(1u << (off % 8));
        if (pwrite(fd, &flipped, 1, (off_t)off) != 1)
            abort();
        snprintf(crash_note, sizeof crash_note, "offset %zu: the reader crashed or hung\n", off);
        alarm(20);
        count[flip_outcome(&ref, off)]++;
        if (pwrite(fd, orig + off, 1, (off_t)off) != 1)
            abort();
    }
    close(fd);
    alarm(0);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    printf("     %zu bytes: %d flips refused, %d harmless, %d unnoticed\n", size, count[0], count[1], count[2]);
    CHECK(count[2] == 0);
    CHECK(count[0] > 0);
    free(orig);
}

int main(void)
{
    fl_h5_quiet();
    test_tmp_path(path, sizeof path, "datafile.h5");
    snprintf(bad_path, sizeof bad_path, "%s.bad", path);
    make_file(path);
    RUN(test_written_file_reads_back_with_both_checks);
    RUN(test_truncated_file_is_named_as_truncated);
    RUN(test_no_flipped_bit_goes_unnoticed);
    unlink(path);
    unlink(bad_path);
    return check_summary();
}
