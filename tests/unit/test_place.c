/* test_place.c -- dist/place.c: data-parallel groups stay on one host
 * whenever a host has the ranks for them; only leftovers span hosts. */
#include "dist/place.h"

#include "check.h"

#define N_MAX 32

static int group_of[N_MAX], pos_of[N_MAX];

/* The hosts a group's ranks are on, counted. */
static int hosts_of_group(int n, const int *host_of, int group)
{
    int seen[N_MAX] = {0}, count = 0;
    for (int r = 0; r < n; r++)
        if (group_of[r] == group && !seen[host_of[r]]) {
            seen[host_of[r]] = 1;
            count++;
        }
    return count;
}

/* Every group has `per` ranks with positions 0..per-1, once each. */
static int groups_are_whole(int n, int per)
{
    for (int g = 0; g < n / per; g++) {
        int have[N_MAX] = {0};
        for (int r = 0; r < n; r++)
            if (group_of[r] == g) {
                if (pos_of[r] < 0 || pos_of[r] >= per || have[pos_of[r]]++)
                    return 0;
            }
        for (int p = 0; p < per; p++)
            if (have[p] != 1)
                return 0;
    }
    return 1;
}

static void test_map_by_node_pairs_stay_on_their_host(void)
{
    /* mpirun --map-by node over 2 hosts: ranks alternate a, b, a, b. */
    int host_of[4] = {0, 1, 0, 1};
    CHECK(fl_place_groups(4, host_of, 2, group_of, pos_of) == 0);
    CHECK(groups_are_whole(4, 2));
    CHECK(group_of[0] == group_of[2] && group_of[1] == group_of[3] && group_of[0] != group_of[1]);
    CHECK(hosts_of_group(4, host_of, 0) == 1 && hosts_of_group(4, host_of, 1) == 1);
    CHECK(pos_of[0] == 0); /* world rank 0 leads */
}

static void test_leftovers_form_the_only_spanning_group(void)
{
    /* 3 ranks on each of 2 hosts, groups of 2: one pair per host, the third ranks together. */
    int host_of[6] = {0, 0, 0, 1, 1, 1};
    CHECK(fl_place_groups(6, host_of, 2, group_of, pos_of) == 1);
    CHECK(groups_are_whole(6, 2));
    int spanning = 0;
    for (int g = 0; g < 3; g++)
        spanning += hosts_of_group(6, host_of, g) > 1;
    CHECK(spanning == 1);
    CHECK(group_of[2] == group_of[5]);
}

static void test_one_rank_per_host_spans_every_group(void)
{
    int host_of[4] = {0, 1, 2, 3};
    CHECK(fl_place_groups(4, host_of, 2, group_of, pos_of) == 2);
    CHECK(groups_are_whole(4, 2));
    CHECK(group_of[0] == group_of[1] && group_of[2] == group_of[3]);
}

static void test_fold_parallel_keeps_world_order(void)
{
    int host_of[4] = {0, 1, 0, 1};
    CHECK(fl_place_groups(4, host_of, 1, group_of, pos_of) == 0);
    for (int r = 0; r < 4; r++)
        CHECK(pos_of[r] == 0);
    CHECK(groups_are_whole(4, 1));
    CHECK(group_of[0] == 0);
}

static void test_rank_zero_leads_a_group_even_on_a_small_host(void)
{
    /* rank 0 alone on its host, 3 ranks on another, groups of 2. */
    int host_of[4] = {0, 1, 1, 1};
    CHECK(fl_place_groups(4, host_of, 2, group_of, pos_of) == 1);
    CHECK(groups_are_whole(4, 2));
    CHECK(pos_of[0] == 0);
    CHECK(group_of[1] == group_of[2] && hosts_of_group(4, host_of, group_of[1]) == 1);
}

int main(void)
{
    RUN(test_map_by_node_pairs_stay_on_their_host);
    RUN(test_leftovers_form_the_only_spanning_group);
    RUN(test_one_rank_per_host_spans_every_group);
    RUN(test_fold_parallel_keeps_world_order);
    RUN(test_rank_zero_leads_a_group_even_on_a_small_host);
    return check_summary();
}
