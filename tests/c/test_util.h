/* Minimal assertion helpers for tether's C tests: every failed check is
 * printed and counted, and the test exits non-zero at the end. */
#ifndef TETHER_TEST_UTIL_H
#define TETHER_TEST_UTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tether.h"

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        test_checks++;                                                              \
        if (!(cond)) {                                                              \
            test_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

/* Checks that `expr` returns the tether_result `want`. */
#define CHECK_RC(expr, want)                                                          \
    do {                                                                              \
        test_checks++;                                                                \
        tether_result rc_ = (expr);                                                   \
        if (rc_ != (tether_result)(want)) {                                           \
            char detail_[256];                                                        \
            size_t n_ = 0;                                                            \
            if (tether_last_error_message(detail_, sizeof detail_, &n_) != 0) {       \
                detail_[0] = '\0';                                                    \
            }                                                                         \
            test_failures++;                                                          \
            fprintf(stderr, "%s:%d: %s returned %u (%s), expected %u (%s) [%s]\n",    \
                    __FILE__, __LINE__, #expr, (unsigned)rc_, tether_result_str(rc_), \
                    (unsigned)(want), tether_result_str(want), detail_);              \
        }                                                                             \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, TETHER_RESULT_OK)

static inline int test_finish(const char *name) {
    if (test_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, test_failures, test_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, test_checks);
    return 0;
}

static inline uint64_t test_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void test_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
