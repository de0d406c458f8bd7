/* fuzz_common.h -- what foldline's libFuzzer targets share: the readers under
 * test take a path, so each input is handed to them as an anonymous
 * in-memory file (memfd), named /proc/self/fd/N, that never touches a disk. */
#ifndef FOLDLINE_FUZZ_COMMON_H
#define FOLDLINE_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A file holding data[0..size), its path in path; returns the fd to close. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t n)
{
    int fd = memfd_create("foldline-fuzz", 0);
    if (fd < 0)
        abort();
    for (size_t done = 0; done < size;) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
    snprintf(path, n, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
