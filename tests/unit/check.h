/* check.h -- the few macros foldline's C unit tests need. Each test file
 * defines test functions, lists them in main with RUN(), and returns
 * check_summary(), which prints "N passed, N failed". */
#ifndef FOLDLINE_CHECK_H
#define FOLDLINE_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures, check_passed, check_current_failed;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
            check_current_failed = 1;                                                                                  \
        }                                                                                                              \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *a_ = (a), *b_ = (b);                                                                               \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK_STR failed: '%s' != '%s'\n", __FILE__, __LINE__, a_ ? a_ : "(null)",         \
                    b_ ? b_ : "(null)");                                                                               \
            check_current_failed = 1;                                                                                  \
        }                                                                                                              \
    } while (0)

#define RUN(fn)                                                                                                        \
    do {                                                                                                               \
        check_current_failed = 0;                                                                                      \
        fn();                                                                                                          \
        if (check_current_failed) {                                                                                    \
            check_failures++;                                                                                          \
            fprintf(stderr, "FAIL %s\n", #fn);                                                                         \
        } else {                                                                                                       \
            check_passed++;                                                                                            \
            printf("ok   %s\n", #fn);                                                                                  \
        }                                                                                                              \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failures);
    return check_failures ? 1 : 0;
}

#endif
