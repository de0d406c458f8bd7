/* cores.c -- see cores.h. */
#include "base/cores.h"

#include <sched.h>
#include <unistd.h>

int fl_cores_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
