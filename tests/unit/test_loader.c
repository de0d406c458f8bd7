/* test_loader.c -- the prefetching batch loader returns exactly the rows it
 * was asked for, in order, from the file or from the memory cache (the
 * feature cache's tests: test_featcache.c). */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "dataset/datafile.h"
#include "dataset/loader.h"

#define N 103
#define M 17
static char path[600];

/* A data file whose every pixel of row r is (r * 7 + c) % 251, c the channel. */
static void make_file(void)
{
    test_tmp_path(path, sizeof path, "loader.h5");
    char *classes[2] = {"a", "b"};
    fl_data_info in = {.n_train = N,
                       .n_test = M,
                       .num_classes = 2,
                       .folds = 2,
                       .height = 5,
                       .width = 4,
                       .channels = 3,
                       .fold_seed = 1,
                       .classes = classes};
    fl_datafile_writer *w;
    fl_error err;
    if (fl_datafile_create(path, NULL, &in, &w, &err))
        abort();
    int32_t labels[N], fold[N];
    char *paths[N];
    for (int i = 0; i < N; i++) {
        labels[i] = i % 2;
        fold[i] = (i / 2) % 2;
        paths[i] = "p";
    }
    fl_datafile_write_rows(w, FL_SPLIT_TRAIN, labels, fold, paths, &err);
    fl_datafile_write_rows(w, FL_SPLIT_TEST, NULL, NULL, paths, &err);
    for (int s = 0; s < 2; s++) {
        int n = s ? M : N;
        uint8_t *px = malloc((size_t)n * 60);
        for (int r = 0; r < n; r++)
            for (int c = 0; c < 3; c++)
                memset(px + r * 60 + c * 20, (r * 7 + c) % 251, 20);
        if (fl_datafile_write_images(w, (fl_split_id)s, 0, n, px, &err))
            abort();
        free(px);
    }
    if (fl_datafile_finish(w, &err))
        abort();
}

static int row_ok(const uint8_t *img, int64_t r)
{
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 20; i++)
            if (img[c * 20 + i] != (r * 7 + c) % 251)
                return 0;
    return 1;
}

static void check_epoch(fl_loader *ld, const int64_t *rows, int64_t n, int batch)
{
    fl_error err;
    CHECK(fl_loader_start(ld, rows, n, batch, &err) == FL_OK);
    const uint8_t *x;
    int B, got;
    int64_t first, seen = 0, expect_first = 0;
    while ((got = fl_loader_next(ld, &x, &B, &first, &err)) == 1) {
        CHECK(first == expect_first);
        CHECK(B == (n - first < batch ? n - first : batch));
        for (int i = 0; i < B; i++)
            CHECK(row_ok(x + (size_t)i * 60, rows[first + i]));
        seen += B;
        expect_first += B;
    }
    CHECK(got == 0);
    CHECK(seen == n);
}

static void test_shuffled_rows_come_back_in_order(void)
{
    for (int cache = 0; cache < 2; cache++) {
        fl_loader *ld;
        fl_error err;
        CHECK(fl_loader_open(path, FL_SPLIT_TRAIN, cache, &ld, &err) == FL_OK);
        int64_t rows[N];
        for (int i = 0; i < N; i++)
            rows[i] = (i * 37) % N;
        check_epoch(ld, rows, N, 10);
        check_epoch(ld, rows, N, 64);
        check_epoch(ld, rows + 5, 1, 7); /* one row, short batch */
        fl_loader_close(ld);
    }
}

static void test_restart_mid_epoch_starts_over(void)
{
    fl_loader *ld;
    fl_error err;
    CHECK(fl_loader_open(path, FL_SPLIT_TRAIN, 0, &ld, &err) == FL_OK);
    int64_t rows[N];
    for (int i = 0; i < N; i++)
        rows[i] = N - 1 - i;
    const uint8_t *x;
    int B;
    int64_t first;
    CHECK(fl_loader_start(ld, rows, N, 8, &err) == FL_OK);
    CHECK(fl_loader_next(ld, &x, &B, &first, &err) == 1);
    int64_t asc[N];
    for (int i = 0; i < N; i++)
        asc[i] = i;
    check_epoch(ld, asc, N, 16); /* bigger batches: buffers grow */
    fl_loader_close(ld);
}

static void test_test_split_and_bad_rows(void)
{
    fl_loader *ld;
    fl_error err;
    CHECK(fl_loader_open(path, FL_SPLIT_TEST, 0, &ld, &err) == FL_OK);
    int64_t rows[M];
    for (int i = 0; i < M; i++)
        rows[i] = i;
    check_epoch(ld, rows, M, 4);
    int64_t bad[1] = {M};
    CHECK(fl_loader_start(ld, bad, 1, 4, &err) != FL_OK);
    fl_loader_close(ld);
}

/* The shards of n_shards loaders tile every batch, in order, each row once. */
static void check_shards(fl_loader *ld, const int64_t *rows, int64_t n, int batch, int n_shards)
{
    fl_error err;
    int64_t *seen = calloc((size_t)n, sizeof *seen);
    for (int s = 0; s < n_shards; s++) {
        CHECK(fl_loader_start_shard(ld, rows, n, batch, s, n_shards, &err) == FL_OK);
        const uint8_t *x;
        int B, got;
        int64_t first, b = 0;
        while ((got = fl_loader_next(ld, &x, &B, &first, &err)) == 1) {
            int64_t lo = b * batch, len = n - lo < batch ? n - lo : batch;
            CHECK(first == lo + len * s / n_shards);
            CHECK(B == lo + len * (s + 1) / n_shards - first);
            for (int i = 0; i < B; i++) {
                CHECK(row_ok(x + (size_t)i * 60, rows[first + i]));
                seen[first + i]++;
            }
            b++;
        }
        CHECK(got == 0);
        CHECK(b == (n + batch - 1) / batch); /* every shard sees every batch, even empty */
    }
    for (int64_t i = 0; i < n; i++)
        CHECK(seen[i] == 1);
    free(seen);
}

static void test_shards_tile_every_batch_exactly_once(void)
{
    for (int cache = 0; cache < 2; cache++) {
        fl_loader *ld;
        fl_error err;
        CHECK(fl_loader_open(path, FL_SPLIT_TRAIN, cache, &ld, &err) == FL_OK);
        int64_t rows[N];
        for (int i = 0; i < N; i++)
            rows[i] = (i * 37) % N;
        check_shards(ld, rows, N, 10, 2);
        check_shards(ld, rows, N, 10, 3); /* the last batch has 3 rows: one per shard */
        check_shards(ld, rows, N, 16, 5); /* 7 rows in the last: shards of 1 and 2 */
        check_shards(ld, rows, 2, 8, 3);  /* fewer rows than shards: one shard is empty */
        fl_loader_close(ld);
    }
}

/* Batches of any size (some empty), sharded: each shard of batch b holds
 * exactly its rows, and empty batches come back with B = 0. */
static void test_batches_of_any_size_and_empty_ones(void)
{
    int64_t rows[N], ends[6] = {10, 10, 47, 48, 48, N};
    for (int i = 0; i < N; i++)
        rows[i] = (i * 41) % N;
    for (int cache = 0; cache < 2; cache++)
        for (int n_shards = 1; n_shards <= 3; n_shards++)
            for (int shard = 0; shard < n_shards; shard++) {
                fl_loader *ld;
                fl_error err;
                CHECK(fl_loader_open(path, FL_SPLIT_TRAIN, cache, &ld, &err) == FL_OK);
                CHECK(fl_loader_start_batches(ld, rows, N, ends, 6, shard, n_shards, &err) == FL_OK);
                const uint8_t *x;
                int B, got;
                int64_t first;
                for (int b = 0; b < 6; b++) {
                    int64_t lo = b ? ends[b - 1] : 0, len = ends[b] - lo;
                    CHECK((got = fl_loader_next(ld, &x, &B, &first, &err)) == 1);
                    if (got != 1)
                        break;
                    CHECK(first == lo + len * shard / n_shards);
                    CHECK(B == (int)(lo + len * (shard + 1) / n_shards - first));
                    for (int i = 0; i < B; i++)
                        CHECK(row_ok(x + (size_t)i * 60, rows[first + i]));
                }
                CHECK(fl_loader_next(ld, &x, &B, &first, &err) == 0);
                int64_t bad[2] = {50, 40};
                CHECK(fl_loader_start_batches(ld, rows, N, bad, 2, 0, 1, &err) == FL_EINTERNAL); /* not ascending */
                fl_loader_close(ld);
            }
}

static void test_missing_file_is_named(void)
{
    fl_loader *ld;
    fl_error err;
    CHECK(fl_loader_open("/nonexistent/x.h5", FL_SPLIT_TRAIN, 0, &ld, &err) != FL_OK);
    CHECK(strstr(err.msg, "/nonexistent/x.h5") != NULL);
}

int main(void)
{
    fl_h5_quiet();
    make_file();
    RUN(test_shuffled_rows_come_back_in_order);
    RUN(test_restart_mid_epoch_starts_over);
    RUN(test_test_split_and_bad_rows);
    RUN(test_shards_tile_every_batch_exactly_once);
    RUN(test_batches_of_any_size_and_empty_ones);
    RUN(test_missing_file_is_named);
    return check_summary();
}
