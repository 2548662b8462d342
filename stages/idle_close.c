/* idle_close.c: the count of the acceptor's requests for room and the
 * readers' claim on serving them (the contract is in idle_close.h). */
#include "stages/idle_close.h"

static int wanted;  /* requests not yet served (atomic) */
static int claimed; /* 1 while a reader serves them (atomic try-lock) */

void sl_idle_close_request(void)
{
    /* Release: pairs with the acquire in sl_idle_close_pending. */
    __atomic_add_fetch(&wanted, 1, __ATOMIC_RELEASE);
}

bool sl_idle_close_request_if_none(void)
{
    int none = 0;
    /* Release: pairs with the acquire in sl_idle_close_pending. */
    return __atomic_compare_exchange_n(&wanted, &none, 1, false, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED);
}

int sl_idle_close_pending(void)
{
    /* Acquire: pairs with the releases in request, request_if_none and done. */
    return __atomic_load_n(&wanted, __ATOMIC_ACQUIRE);
}

bool sl_idle_close_claim(void)
{
    int free_ = 0;
    /* Acquire: pairs with the release in sl_idle_close_unclaim. */
    return __atomic_compare_exchange_n(&claimed, &free_, 1, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

void sl_idle_close_unclaim(void)
{
    __atomic_store_n(&claimed, 0, __ATOMIC_RELEASE); /* pairs with the claim's acquire */
}

void sl_idle_close_done(void)
{
    /* Release, after the caller's close: pairs with the acquire in
       sl_idle_close_pending. */
    __atomic_sub_fetch(&wanted, 1, __ATOMIC_RELEASE);
}

bool sl_idle_close_drop(int seen)
{
    /* Relaxed: dropping publishes nothing; a failure means only "look again". */
    return __atomic_compare_exchange_n(&wanted, &seen, 0, false, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED);
}
