#ifndef BALLOTLEDGER_SHA256_PAIR_H
#define BALLOTLEDGER_SHA256_PAIR_H
/* SHA-256 (FIPS 180-4) of two messages at once with the x86 SHA extensions, for the Merkle
 * tree's many short, independent hashes. The SHA round instruction has a latency several
 * times its throughput, so one message leaves the unit mostly idle; interleaving the rounds of
 * two fills it (measured 1.55x OpenSSL's one-message code on 97-byte records,
 * docs/performance.md). Every message is `prefix || bytes`, the RFC 6962 leaf (0x00) and node
 * (0x01) form, so no caller has to copy a record to prepend its byte (blocks that hold the
 * prefix or the padding are assembled on the stack; the others are read in place).
 *
 * Where the processor lacks the extensions (or is not x86-64), `ballot_sha256_pair_available`
 * returns 0 and the callers use OpenSSL instead; the other functions must not be called. */
#include <stddef.h>

/* 1 if this processor has the SHA extensions (with SSSE3 and SSE4.1), else 0. */
int ballot_sha256_pair_available(void);

/* SHA-256(prefix || a[0..<na]) into out_a and SHA-256(prefix || b[0..<nb]) into out_b. */
void ballot_sha256_pair(unsigned char prefix,
                        const void *a, size_t na, unsigned char out_a[32],
                        const void *b, size_t nb, unsigned char out_b[32]);

/* SHA-256(prefix || a[0..<na]) into out_a, one message. */
void ballot_sha256_one(unsigned char prefix, const void *a, size_t na, unsigned char out_a[32]);

#endif
