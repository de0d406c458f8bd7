/* test_featcache.c -- the feature cache of frozen backbones
 * (dataset/featcache.h): rows come back by row, from memory or from a scratch
 * file that is gone after close. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "dataset/featcache.h"
#include "dataset/datafile.h"

/* The feature cache: rows put in blocks come back by row, in any order, the
 * same from memory and from the scratch file, which is gone after close. */
static void test_feature_cache_memory_and_file(void)
{
    enum { R = 37, D = 5 };
    float src[R * D], got[2][R * D];
    for (int i = 0; i < R * D; i++)
        src[i] = (float)i * 0.25f - 3.0f;
    int64_t order[R];
    for (int i = 0; i < R; i++)
        order[i] = (i * 11) % R;
    order[3] = order[4] = 7; /* repeats are fine */
    char file[600];
    test_tmp_path(file, sizeof file, "featcache.h5");
    for (int in_file = 0; in_file < 2; in_file++) {
        fl_featcache *c;
        fl_error err;
        CHECK(fl_featcache_open(in_file ? file : NULL, R, D, &c, &err) == FL_OK);
        CHECK(fl_featcache_in_file(c) == in_file);
        CHECK(fl_featcache_put(c, 0, 20, src, &err) == FL_OK);
        CHECK(fl_featcache_put(c, 20, R - 20, src + 20 * D, &err) == FL_OK);
        CHECK(fl_featcache_put(c, 30, 10, src, &err) == FL_EINTERNAL); /* past the end */
        CHECK(fl_featcache_get(c, order, R, got[in_file], &err) == FL_OK);
        for (int i = 0; i < R; i++)
            CHECK(memcmp(got[in_file] + i * D, src + order[i] * D, sizeof(float) * D) == 0);
        CHECK(access(file, F_OK) == (in_file ? 0 : -1));
        fl_featcache_close(c);
        CHECK(access(file, F_OK) == -1);
    }
    fl_featcache *c;
    fl_error err;
    CHECK(fl_featcache_open("/nonexistent/dir/f.h5", R, D, &c, &err) == FL_EIO);
    CHECK(strstr(err.msg, "/nonexistent/dir/f.h5") != NULL);
}

int main(void)
{
    fl_h5_quiet();
    RUN(test_feature_cache_memory_and_file);
    return check_summary();
}
