/* check.h: the harnesses' invariant check. A violated contract aborts with
 * the condition and its line, which libFuzzer reports as a crash and
 * tools/fuzz-run.sh picks out of the log ("invariant failed"). */
#ifndef SLUICE_FUZZ_CHECK_H
#define SLUICE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
