/* strmap.h -- a string -> integer hash map (open addressing, FNV-1a) for
 * duplicate and class-name checks over tens of thousands of CSV rows. Keys
 * are borrowed: they must outlive the map. */
#ifndef FOLDLINE_STRMAP_H
#define FOLDLINE_STRMAP_H

#include <stddef.h>

typedef struct {
    const char **keys;
    long *vals;
    size_t cap, len;
} fl_strmap;

int fl_strmap_init(fl_strmap *m, size_t expected);
void fl_strmap_free(fl_strmap *m);
/* Pointer to the value of key, or NULL. */
long *fl_strmap_get(const fl_strmap *m, const char *key);
/* Inserts key -> val if absent; returns 0, or -1 when out of memory. */
int fl_strmap_put(fl_strmap *m, const char *key, long val);

#endif
