/* folds.c -- see folds.h. */
#include "dataset/folds.h"

#include <stdlib.h>
#include <string.h>

void fl_mt19937_seed(fl_mt19937 *mt, uint32_t seed)
{
    mt->key[0] = seed;
    for (int i = 1; i < 624; i++)
        mt->key[i] = 1812433253u * (mt->key[i - 1] ^ (mt->key[i - 1] >> 30)) + (uint32_t)i;
    mt->pos = 624;
}

static void mt_generate(fl_mt19937 *mt)
{
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    int i;
    uint32_t y;
    for (i = 0; i < 624 - 397; i++) {
        y = (mt->key[i] & 0x80000000u) | (mt->key[i + 1] & 0x7fffffffu);
        mt->key[i] = mt->key[i + 397] ^ (y >> 1) ^ mag01[y & 1];
    }
    for (; i < 623; i++) {
        y = (mt->key[i] & 0x80000000u) | (mt->key[i + 1] & 0x7fffffffu);
        mt->key[i] = mt->key[i + 397 - 624] ^ (y >> 1) ^ mag01[y & 1];
    }
    y = (mt->key[623] & 0x80000000u) | (mt->key[0] & 0x7fffffffu);
    mt->key[623] = mt->key[396] ^ (y >> 1) ^ mag01[y & 1];
    mt->pos = 0;
}

uint32_t fl_mt19937_next(fl_mt19937 *mt)
{
    if (mt->pos == 624)
        mt_generate(mt);
    uint32_t y = mt->key[mt->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint32_t fl_mt19937_interval(fl_mt19937 *mt, uint32_t max)
{
    if (max == 0)
        return 0;
    uint32_t mask = max, v;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    while ((v = fl_mt19937_next(mt) & mask) > max)
        ;
    return v;
}

fl_code fl_folds_stratified(const int32_t *labels, int n, int k, uint32_t seed, int32_t *fold_of_row, fl_error *err)
{
    if (k < 2)
        return fl_fail(err, FL_EINPUT, "--folds %d: need at least 2 folds", k);
    int32_t max_label = -1;
    for (int i = 0; i < n; i++)
        if (labels[i] > max_label)
            max_label = labels[i];
    int span = max_label + 1;
    /* enc[label] = class index by first appearance; -1 if absent. */
    int *enc = malloc(sizeof *enc * (size_t)(span > 0 ? span : 1));
    int *count = calloc((size_t)(span > 0 ? span : 1), sizeof *count);
    int32_t *ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
    int *cursor = calloc((size_t)(span > 0 ? span : 1), sizeof *cursor);
    fl_code rc = FL_OK;
    if (!enc || !count || !ids || !cursor) {
        rc = fl_fail(err, FL_ENOMEM, "out of memory assigning folds");
        goto done;
    }
    for (int c = 0; c < span; c++)
        enc[c] = -1;
    int ncls = 0;
    for (int i = 0; i < n; i++)
        if (enc[labels[i]] < 0)
            enc[labels[i]] = ncls++;
    for (int i = 0; i < n; i++)
        count[enc[labels[i]]]++;
    for (int c = 0; c < ncls; c++)
        if (count[c] < k) {
            rc = fl_fail(err, FL_EINPUT, "a class has %d rows, fewer than %d folds", count[c], k);
            goto done;
        }
    fl_mt19937 mt;
    fl_mt19937_seed(&mt, seed);
    /* Class c occupies positions [start, start + count[c]) of the label-sorted
     * rows; position p goes to fold p % k. Build its fold ids in blocks. */
    int start = 0, off = 0;
    for (int c = 0; c < ncls; c++) {
        int32_t *f = ids + off, m = 0;
        for (int fold = 0; fold < k; fold++) {
            int first = start + ((fold - start % k) + k) % k; /* first p >= start with p % k == fold */
            int quota = first < start + count[c] ? (start + count[c] - 1 - first) / k + 1 : 0;
            for (int q = 0; q < quota; q++)
                f[m++] = fold;
        }
        for (int i = m - 1; i >= 1; i--) {
            uint32_t j = fl_mt19937_interval(&mt, (uint32_t)i);
            int32_t t = f[i];
            f[i] = f[j];
            f[j] = t;
        }
        cursor[c] = off;
        off += m;
        start += count[c];
    }
    for (int i = 0; i < n; i++)
        fold_of_row[i] = ids[cursor[enc[labels[i]]]++];
done:
    free(enc);
    free(count);
    free(ids);
    free(cursor);
    return rc;
}
