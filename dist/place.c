/* place.c -- see place.h. */
#include "dist/place.h"

#include <stdlib.h>

/* Assigns rank r the next place in the group being filled. */
static void place_take(int r, int per, int *filled, int *group_of, int *pos_of)
{
    group_of[r] = *filled / per;
    pos_of[r] = *filled % per;
    (*filled)++;
}

int fl_place_groups(int n, const int *host_of, int per, int *group_of, int *pos_of)
{
    int filled = 0, spanning = 0;
    /* Hosts in the order of their lowest world rank (rank 0's host first),
     * ranks of a host in world order. */
    char *seen = calloc((size_t)n, 1), *left = calloc((size_t)n, 1);
    if (!seen || !left) { /* no memory for the plan: world order, which is always valid */
        for (int r = 0; r < n; r++)
            place_take(r, per, &filled, group_of, pos_of);
        free(seen);
        free(left);
        return -1;
    }
    for (int first = 0; first < n; first++) {
        if (seen[first])
            continue;
        int count = 0;
        for (int r = first; r < n; r++)
            if (host_of[r] == host_of[first]) {
                seen[r] = 1;
                count++;
            }
        int whole = count / per * per; /* this host's ranks that fill groups of their own */
        for (int r = first, k = 0; r < n; r++) {
            if (host_of[r] != host_of[first])
                continue;
            if (k++ < whole)
                place_take(r, per, &filled, group_of, pos_of);
            else
                left[r] = 1;
        }
    }
    /* The ranks left over, host after host, in groups that span hosts. */
    int first_spanning = filled / per;
    for (int first = 0; first < n; first++)
        if (left[first])
            for (int r = first; r < n; r++)
                if (left[r] && host_of[r] == host_of[first]) {
                    left[r] = 0;
                    place_take(r, per, &filled, group_of, pos_of);
                }
    spanning = n / per - first_spanning;
    free(seen);
    free(left);
    return spanning;
}
