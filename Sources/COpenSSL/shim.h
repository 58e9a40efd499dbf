#ifndef BALLOTLEDGER_COPENSSL_SHIM_H
#define BALLOTLEDGER_COPENSSL_SHIM_H
/* SHA-256 from OpenSSL's libcrypto, through its low-level interface: a context is a plain
 * struct on the stack, so hashing allocates nothing and a precomputed HMAC key state is copied
 * by value. OpenSSL 3 marks this interface deprecated in favour of EVP, which measured 25-50 %
 * slower here (docs/performance.md); the deprecation is contained in this header. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include <stddef.h>

typedef SHA256_CTX ballot_sha256_ctx;

static inline void ballot_sha256_init(ballot_sha256_ctx *c) { SHA256_Init(c); }
static inline void ballot_sha256_update(ballot_sha256_ctx *c, const void *data, size_t n) { SHA256_Update(c, data, n); }
static inline void ballot_sha256_final(ballot_sha256_ctx *c, unsigned char out[32]) { SHA256_Final(out, c); }

#endif
