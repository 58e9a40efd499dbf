#ifndef BALLOTLEDGER_CNATS_SHIM_H
#define BALLOTLEDGER_CNATS_SHIM_H
/* The official NATS C client (Debian's libnats-dev), with JetStream. BallotNATS is its only
 * user. The one helper here counts asynchronous publishes that JetStream did not acknowledge:
 * a C function can be a callback, where a Swift closure that captures cannot. */
#include <nats/nats.h>
#include <stdint.h>

static inline void ballot_nats_count_publish_failure(jsCtx *js, jsPubAckErr *pae, void *closure) {
    (void)js; (void)pae;
    __atomic_add_fetch((int64_t *)closure, 1, __ATOMIC_RELAXED);
}

static inline void ballot_nats_count_publish_failures(jsOptions *opts, int64_t *counter) {
    opts->PublishAsync.ErrHandler = ballot_nats_count_publish_failure;
    opts->PublishAsync.ErrHandlerClosure = counter;
}

/* The count so far, and zero in its place, in one step (the callback may run meanwhile). */
static inline int64_t ballot_nats_take_counter(int64_t *counter) {
    return __atomic_exchange_n(counter, 0, __ATOMIC_RELAXED);
}

#endif
