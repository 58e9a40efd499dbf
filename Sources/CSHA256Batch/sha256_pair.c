#include "sha256_batch.h"
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

#include "sha256_constants.h"

int ballot_sha256_pair_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int sha = (b >> 29) & 1;
    return ssse3 && sse41 && sha;
}

/* The eight state words as the SHA instructions hold them: ABEF and CDGH. */
typedef struct { __m128i abef, cdgh; } State;

SHA_TARGET static inline State initial_state(void) {
    __m128i dcba = _mm_loadu_si128((const __m128i *)&H[0]), hgfe = _mm_loadu_si128((const __m128i *)&H[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1), efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    State s = {_mm_alignr_epi8(cdab, efgh, 8), _mm_blend_epi16(efgh, cdab, 0xF0)};
    return s;
}

SHA_TARGET static inline void store_digest(State s, unsigned char out[32]) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i feba = _mm_shuffle_epi32(s.abef, 0x1B), dchg = _mm_shuffle_epi32(s.cdgh, 0xB1);
    __m128i dcba = _mm_blend_epi16(feba, dchg, 0xF0), hgfe = _mm_alignr_epi8(dchg, feba, 8);
    _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(dcba, bswap));
    _mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(hgfe, bswap));
}

#define LOAD(p, o) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((p) + (o))), bswap)
/* Four rounds (g = 0…15) with message words M. */
#define ROUNDS(s, M, g) do { \
        __m128i wk = _mm_add_epi32((M), _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, wk); \
        s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32(wk, 0x0E)); \
    } while (0)
/* The next four schedule words, W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], into M0. */
#define SCHEDULE(M0, M1, M2, M3) \
    M0 = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(M0, M1), _mm_alignr_epi8(M3, M2, 4)), M3)

SHA_TARGET static void compress_one(State *state, const unsigned char *p) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    State s = *state;
    __m128i M0 = LOAD(p, 0), M1 = LOAD(p, 16), M2 = LOAD(p, 32), M3 = LOAD(p, 48);
    ROUNDS(s, M0, 0); ROUNDS(s, M1, 1); ROUNDS(s, M2, 2); ROUNDS(s, M3, 3);
    for (int g = 4; g < 16; g += 4) {
        SCHEDULE(M0, M1, M2, M3); ROUNDS(s, M0, g);
        SCHEDULE(M1, M2, M3, M0); ROUNDS(s, M1, g + 1);
        SCHEDULE(M2, M3, M0, M1); ROUNDS(s, M2, g + 2);
        SCHEDULE(M3, M0, M1, M2); ROUNDS(s, M3, g + 3);
    }
    state->abef = _mm_add_epi32(s.abef, state->abef);
    state->cdgh = _mm_add_epi32(s.cdgh, state->cdgh);
}

/* One block of each of two messages, their rounds interleaved. */
SHA_TARGET static void compress_two(State *sa, const unsigned char *p, State *sb, const unsigned char *q) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    State a = *sa, b = *sb;
    __m128i M0 = LOAD(p, 0), M1 = LOAD(p, 16), M2 = LOAD(p, 32), M3 = LOAD(p, 48);
    __m128i N0 = LOAD(q, 0), N1 = LOAD(q, 16), N2 = LOAD(q, 32), N3 = LOAD(q, 48);
    ROUNDS(a, M0, 0); ROUNDS(b, N0, 0); ROUNDS(a, M1, 1); ROUNDS(b, N1, 1);
    ROUNDS(a, M2, 2); ROUNDS(b, N2, 2); ROUNDS(a, M3, 3); ROUNDS(b, N3, 3);
    for (int g = 4; g < 16; g += 4) {
        SCHEDULE(M0, M1, M2, M3); SCHEDULE(N0, N1, N2, N3); ROUNDS(a, M0, g); ROUNDS(b, N0, g);
        SCHEDULE(M1, M2, M3, M0); SCHEDULE(N1, N2, N3, N0); ROUNDS(a, M1, g + 1); ROUNDS(b, N1, g + 1);
        SCHEDULE(M2, M3, M0, M1); SCHEDULE(N2, N3, N0, N1); ROUNDS(a, M2, g + 2); ROUNDS(b, N2, g + 2);
        SCHEDULE(M3, M0, M1, M2); SCHEDULE(N3, N0, N1, N2); ROUNDS(a, M3, g + 3); ROUNDS(b, N3, g + 3);
    }
    sa->abef = _mm_add_epi32(a.abef, sa->abef); sa->cdgh = _mm_add_epi32(a.cdgh, sa->cdgh);
    sb->abef = _mm_add_epi32(b.abef, sb->abef); sb->cdgh = _mm_add_epi32(b.cdgh, sb->cdgh);
}

/* The message prefix || bytes[0..<n], padded (0x80, zeros, bit length as u64 BE), read one
 * 64-byte block at a time without copying the message whole. */
typedef struct {
    unsigned char prefix;
    const unsigned char *bytes;
    size_t n;       /* message length is n + 1 */
    size_t blocks;  /* padded length / 64 */
} Message;

static Message message(unsigned char prefix, const void *bytes, size_t n) {
    Message m = {prefix, (const unsigned char *)bytes, n, (n + 1 + 8) / 64 + 1};
    return m;
}

/* Block k of m: a pointer into the message where the block lies wholly inside it, else the
 * block assembled in `scratch`. */
static const unsigned char *block(const Message *m, size_t k, unsigned char scratch[64]) {
    size_t start = 64 * k, length = m->n + 1;
    if (start >= 1 && start + 64 <= length) return m->bytes + start - 1;
    memset(scratch, 0, 64);
    size_t end = start + 64 < length ? start + 64 : length;  /* message bytes in this block */
    if (start == 0) {
        scratch[0] = m->prefix;
        if (end > 1) memcpy(scratch + 1, m->bytes, end - 1);
    } else if (start < end) {
        memcpy(scratch, m->bytes + start - 1, end - start);
    }
    if (length >= start && length < start + 64) scratch[length - start] = 0x80;
    if (k == m->blocks - 1) {
        uint64_t bits = (uint64_t)length * 8;
        for (int i = 0; i < 8; i++) scratch[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    return scratch;
}

void ballot_sha256_pair(unsigned char prefix, const void *a, size_t na, unsigned char out_a[32],
                        const void *b, size_t nb, unsigned char out_b[32]) {
    Message ma = message(prefix, a, na), mb = message(prefix, b, nb);
    State sa = initial_state(), sb = initial_state();
    unsigned char scratch_a[64], scratch_b[64];
    size_t both = ma.blocks < mb.blocks ? ma.blocks : mb.blocks;
    for (size_t k = 0; k < both; k++)
        compress_two(&sa, block(&ma, k, scratch_a), &sb, block(&mb, k, scratch_b));
    for (size_t k = both; k < ma.blocks; k++) compress_one(&sa, block(&ma, k, scratch_a));
    for (size_t k = both; k < mb.blocks; k++) compress_one(&sb, block(&mb, k, scratch_b));
    store_digest(sa, out_a);
    store_digest(sb, out_b);
}

void ballot_sha256_one(unsigned char prefix, const void *a, size_t na, unsigned char out_a[32]) {
    Message ma = message(prefix, a, na);
    State sa = initial_state();
    unsigned char scratch[64];
    for (size_t k = 0; k < ma.blocks; k++) compress_one(&sa, block(&ma, k, scratch));
    store_digest(sa, out_a);
}

#else

int ballot_sha256_pair_available(void) { return 0; }
void ballot_sha256_pair(unsigned char prefix, const void *a, size_t na, unsigned char out_a[32],
                        const void *b, size_t nb, unsigned char out_b[32]) {
    (void)prefix; (void)a; (void)na; (void)out_a; (void)b; (void)nb; (void)out_b;
    __builtin_trap();
}
void ballot_sha256_one(unsigned char prefix, const void *a, size_t na, unsigned char out_a[32]) {
    (void)prefix; (void)a; (void)na; (void)out_a;
    __builtin_trap();
}

#endif
