/* tsan.h: forced into every file of the ThreadSanitizer build (make tsan,
 * `-include`), never into others. liburcu's atomics are inline assembly
 * (uatomic_xchg, uatomic_cmpxchg, uatomic_add_return, ...) and volatile
 * accesses (uatomic_read/set, CMM_LOAD_SHARED/CMM_STORE_SHARED), which TSan
 * cannot see or takes for plain accesses: every flag, counter, reference
 * count or hint that sluice shares through them would be reported as a race,
 * and the orderings they give would be invisible. Here each becomes the
 * __atomic builtin it stands for, with the same strength (liburcu's
 * read-modify-writes are full barriers: seq_cst; its loads and stores are
 * relaxed), which TSan understands. What still runs inside liburcu itself
 * (its queues, hash table, call_rcu, grace periods) stays invisible: see
 * SL_TSAN_RELEASE/ACQUIRE in lib/common.h and tests/tsan.supp. */
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
#undef uatomic_xchg
#define uatomic_xchg(addr, v) __atomic_exchange_n((addr), (v), __ATOMIC_SEQ_CST)
#undef uatomic_cmpxchg
#define uatomic_cmpxchg(addr, old, _new)                                                \
    __extension__({                                                                     \
        __typeof__(*(addr)) _sl_old = (old);                                            \
        __atomic_compare_exchange_n((addr), &_sl_old, (_new), 0, __ATOMIC_SEQ_CST,      \
                                    __ATOMIC_SEQ_CST);                                  \
        _sl_old;                                                                        \
    })
#undef uatomic_add_return
#define uatomic_add_return(addr, v) __atomic_add_fetch((addr), (v), __ATOMIC_SEQ_CST)
#undef uatomic_sub_return
#define uatomic_sub_return(addr, v) __atomic_sub_fetch((addr), (v), __ATOMIC_SEQ_CST)
#undef uatomic_add
#define uatomic_add(addr, v) ((void)__atomic_fetch_add((addr), (v), __ATOMIC_SEQ_CST))
#undef uatomic_sub
#define uatomic_sub(addr, v) ((void)__atomic_fetch_sub((addr), (v), __ATOMIC_SEQ_CST))
#undef uatomic_inc
#define uatomic_inc(addr) uatomic_add((addr), 1)
#undef uatomic_dec
#define uatomic_dec(addr) uatomic_sub((addr), 1)
#undef uatomic_and
#define uatomic_and(addr, v) ((void)__atomic_fetch_and((addr), (v), __ATOMIC_SEQ_CST))
#undef uatomic_or
#define uatomic_or(addr, v) ((void)__atomic_fetch_or((addr), (v), __ATOMIC_SEQ_CST))

#endif
