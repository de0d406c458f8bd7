/* place.h -- which ranks train together: the world's ranks in groups of
 * dist.ranks_per_job, placed by host.
 *
 * A data-parallel group all-reduces every step: inside one host that is
 * shared memory, across hosts the network. So groups are filled from one
 * host whenever it has enough ranks left, and only the ranks left over on
 * the hosts (when a host's rank count is not a multiple of the group size)
 * form groups that span hosts, in host order. Fold-parallel groups (one
 * rank each) follow the world's order, which mpirun's --map-by decides.
 *
 * Pure arithmetic on what every rank knows after one all-gather, so every
 * rank computes the same placement without further messages.
 */
#ifndef FOLDLINE_PLACE_H
#define FOLDLINE_PLACE_H

/* n ranks; host_of[r]: a host id per world rank (equal ids: same host),
 * listed in any order; per: ranks per group (n % per == 0). Fills
 * group_of[r] (0 .. n/per - 1) and pos_of[r] (0 .. per-1; 0 is the group's
 * leader). Group 0's leader is rank 0. Returns the number of groups that
 * span more than one host. */
int fl_place_groups(int n, const int *host_of, int per, int *group_of, int *pos_of);

#endif
