#ifndef BALLOTLEDGER_SHA256_BATCH_H
#define BALLOTLEDGER_SHA256_BATCH_H
/* SHA-256 (FIPS 180-4) of many short, independent messages at once, for the Merkle tree's
 * leaves and nodes (docs/performance.md, "Auditing"). Every message is `prefix || bytes`, the
 * RFC 6962 leaf (0x00) and node (0x01) form, so no caller has to copy a record to prepend its
 * byte.
 *
 * Two ways, by what the processor has:
 * - sixteen at a time (sha256_x16.c): each AVX-512 register holds one state word of sixteen
 *   messages, and one instruction does a step of the round for all of them. Blocks are read
 *   with masked loads, so no byte past a message is touched.
 * - two at a time (sha256_pair.c): the x86 SHA extensions, the rounds of two messages
 *   interleaved. The SHA round instruction has a latency several times its throughput, so one
 *   message leaves the unit mostly idle (measured 1.55x OpenSSL's one-message code on 97-byte
 *   records). Blocks that hold the prefix or the padding are assembled on the stack.
 *
 * Where a function's `available` returns 0, it must not be called; the callers then use the
 * other, or OpenSSL. All give the same hashes. */
#include <stddef.h>

/* 1 if this processor and OS support AVX-512 F, BW and VBMI, else 0. */
int ballot_sha256_x16_available(void);

/* SHA-256(prefix || messages[i][0..<lengths[i]]) into out + 32 i, for i in 0..<16. The messages
 * may differ in length. */
void ballot_sha256_x16(unsigned char prefix, const void *const messages[16], const size_t lengths[16],
                       unsigned char *out);

/* 1 if this processor has the SHA extensions (with SSSE3 and SSE4.1), else 0. */
int ballot_sha256_pair_available(void);

/* SHA-256(prefix || a[0..<na]) into out_a and SHA-256(prefix || b[0..<nb]) into out_b. */
void ballot_sha256_pair(unsigned char prefix,
                        const void *a, size_t na, unsigned char out_a[32],
                        const void *b, size_t nb, unsigned char out_b[32]);

/* SHA-256(prefix || a[0..<na]) into out_a, one message. */
void ballot_sha256_one(unsigned char prefix, const void *a, size_t na, unsigned char out_a[32]);

#endif
