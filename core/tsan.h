/* tsan.h: forced into every file of the ThreadSanitizer build (make tsan,
 * `-include`), never into others. liburcu's shared accesses (uatomic_read,
 * uatomic_set, CMM_LOAD_SHARED, CMM_STORE_SHARED) are volatile accesses,
 * which TSan takes for plain ones: every flag, counter, limit or hint that
 * sluice shares through them would be reported as a race although x86 and
 * liburcu make them atomic. Here they become the relaxed __atomic operations
 * they stand for, which TSan understands. Orderings are untouched: the
 * barriers that pair with them (cmm_smp_mb) stay as they are. */
#ifndef SLUICE_TSAN_H
#define SLUICE_TSAN_H

#include <urcu/system.h>
#include <urcu/uatomic.h>

#undef CMM_LOAD_SHARED
#define CMM_LOAD_SHARED(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)
#undef CMM_STORE_SHARED
#define CMM_STORE_SHARED(x, v)                                                          \
    __extension__({                                                                     \
        __typeof__(x) _sl_v = (v);                                                      \
        __atomic_store_n(&(x), _sl_v, __ATOMIC_RELAXED);                                \
        _sl_v;                                                                          \
    })
#undef uatomic_read
#define uatomic_read(addr) __atomic_load_n((addr), __ATOMIC_RELAXED)
#undef uatomic_set
#define uatomic_set(addr, v) __atomic_store_n((addr), (v), __ATOMIC_RELAXED)

#endif
