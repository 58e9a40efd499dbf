#include "sha256_batch.h"
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/* AVX-512 F and BW for the 16-lane arithmetic and byte masks, VBMI for the byte permute. */
#define X16_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))

#include "sha256_constants.h"

int ballot_sha256_x16_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!((c >> 27) & 1)) return 0;  /* OSXSAVE: xgetbv is there */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int f = (b >> 16) & 1, bw = (b >> 30) & 1, vbmi = (c >> 1) & 1;
    if (!(f && bw && vbmi)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6) == 0xE6;  /* the OS saves the SSE, AVX and all three AVX-512 states */
}

/* Block k of lane's message `prefix || bytes[0..<n]`, padded, as 64 bytes in a register, its
 * words byte-swapped to numbers. Only the message's own bytes are read (masked loads). */
X16_TARGET static inline __m512i lane_block(unsigned char prefix, const unsigned char *bytes, size_t n, size_t k, size_t blocks) {
    const __m512i bswap = _mm512_broadcast_i32x4(_mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL));
    size_t length = n + 1, start = 64 * k;
    __m512i v;
    if (k == 0) {
        /* bytes[0..<63] one place along, the prefix in front */
        size_t take = n < 63 ? n : 63;
        __m512i loaded = _mm512_maskz_loadu_epi8(take == 0 ? 0 : (~0ULL >> (64 - take)), bytes);
        const __m512i along = _mm512_set_epi8(
            62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35,
            34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
            5, 4, 3, 2, 1, 0, 0);
        v = _mm512_mask_set1_epi8(_mm512_permutexvar_epi8(along, loaded), 1, (char)prefix);
    } else if (start - 1 < n) {
        size_t take = n - (start - 1) < 64 ? n - (start - 1) : 64;
        v = _mm512_maskz_loadu_epi8(~0ULL >> (64 - take), bytes + start - 1);
    } else {
        v = _mm512_setzero_si512();
    }
    if (length >= start && length < start + 64) v = _mm512_mask_set1_epi8(v, 1ULL << (length - start), (char)0x80);
    v = _mm512_shuffle_epi8(v, bswap);
    if (k == blocks - 1) {
        /* the bit length, a u64 big-endian in bytes 56..63: words 14 (high) and 15 (low) */
        uint64_t bits = (uint64_t)length * 8;
        v = _mm512_mask_set1_epi32(v, 1 << 14, (int)(bits >> 32));
        v = _mm512_mask_set1_epi32(v, 1 << 15, (int)(uint32_t)bits);
    }
    return v;
}

/* rows[l] holds lane l's 16 words; afterwards w[t] holds word t of all 16 lanes. */
X16_TARGET static inline void transpose(const __m512i rows[16], __m512i w[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
    }
    /* u[4g + j], in 128-bit lane L, holds word 4L + j of rows 4g…4g+3 */
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i even0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), odd0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
        __m512i even1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), odd1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
        w[j] = _mm512_shuffle_i32x4(even0, even1, 0x88);
        w[8 + j] = _mm512_shuffle_i32x4(even0, even1, 0xDD);
        w[4 + j] = _mm512_shuffle_i32x4(odd0, odd1, 0x88);
        w[12 + j] = _mm512_shuffle_i32x4(odd0, odd1, 0xDD);
    }
}

/* One block of each lane: the 64 rounds, then the state of each lane in `active` takes the
 * sum (a lane whose message has ended keeps its state). */
X16_TARGET static inline void compress16(__m512i st[8], __m512i w[16], __mmask16 active) {
    __m512i a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
#define X16_ROUND(t, wt) do { \
        __m512i S1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11), _mm512_ror_epi32(e, 25), 0x96); \
        __m512i ch = _mm512_ternarylogic_epi32(e, f, g, 0xCA); \
        __m512i t1 = _mm512_add_epi32(_mm512_add_epi32(h, S1), _mm512_add_epi32(ch, _mm512_add_epi32((wt), _mm512_set1_epi32((int)K[t])))); \
        __m512i S0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13), _mm512_ror_epi32(a, 22), 0x96); \
        __m512i maj = _mm512_ternarylogic_epi32(a, b, c, 0xE8); \
        h = g; g = f; f = e; e = _mm512_add_epi32(d, t1); d = c; c = b; b = a; \
        a = _mm512_add_epi32(t1, _mm512_add_epi32(S0, maj)); \
    } while (0)
#define X16_SCHEDULE(t) do { \
        __m512i w15 = w[((t) - 15) & 15], w2 = w[((t) - 2) & 15]; \
        __m512i s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(w15, 7), _mm512_ror_epi32(w15, 18), _mm512_srli_epi32(w15, 3), 0x96); \
        __m512i s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(w2, 17), _mm512_ror_epi32(w2, 19), _mm512_srli_epi32(w2, 10), 0x96); \
        w[(t) & 15] = _mm512_add_epi32(_mm512_add_epi32(w[(t) & 15], s0), _mm512_add_epi32(w[((t) - 7) & 15], s1)); \
    } while (0)
#define X16_EIGHT(t) do { X16_ROUND(t, w[(t) & 15]); X16_ROUND(t + 1, w[(t + 1) & 15]); X16_ROUND(t + 2, w[(t + 2) & 15]); \
        X16_ROUND(t + 3, w[(t + 3) & 15]); X16_ROUND(t + 4, w[(t + 4) & 15]); X16_ROUND(t + 5, w[(t + 5) & 15]); \
        X16_ROUND(t + 6, w[(t + 6) & 15]); X16_ROUND(t + 7, w[(t + 7) & 15]); } while (0)
#define X16_EIGHT_SCHEDULED(t) do { X16_SCHEDULE(t); X16_ROUND(t, w[(t) & 15]); X16_SCHEDULE(t + 1); X16_ROUND(t + 1, w[(t + 1) & 15]); \
        X16_SCHEDULE(t + 2); X16_ROUND(t + 2, w[(t + 2) & 15]); X16_SCHEDULE(t + 3); X16_ROUND(t + 3, w[(t + 3) & 15]); \
        X16_SCHEDULE(t + 4); X16_ROUND(t + 4, w[(t + 4) & 15]); X16_SCHEDULE(t + 5); X16_ROUND(t + 5, w[(t + 5) & 15]); \
        X16_SCHEDULE(t + 6); X16_ROUND(t + 6, w[(t + 6) & 15]); X16_SCHEDULE(t + 7); X16_ROUND(t + 7, w[(t + 7) & 15]); } while (0)
    X16_EIGHT(0); X16_EIGHT(8);
    X16_EIGHT_SCHEDULED(16); X16_EIGHT_SCHEDULED(24); X16_EIGHT_SCHEDULED(32); X16_EIGHT_SCHEDULED(40);
    X16_EIGHT_SCHEDULED(48); X16_EIGHT_SCHEDULED(56);
    st[0] = _mm512_mask_add_epi32(st[0], active, st[0], a);
    st[1] = _mm512_mask_add_epi32(st[1], active, st[1], b);
    st[2] = _mm512_mask_add_epi32(st[2], active, st[2], c);
    st[3] = _mm512_mask_add_epi32(st[3], active, st[3], d);
    st[4] = _mm512_mask_add_epi32(st[4], active, st[4], e);
    st[5] = _mm512_mask_add_epi32(st[5], active, st[5], f);
    st[6] = _mm512_mask_add_epi32(st[6], active, st[6], g);
    st[7] = _mm512_mask_add_epi32(st[7], active, st[7], h);
}

X16_TARGET void ballot_sha256_x16(unsigned char prefix, const void *const messages[16], const size_t lengths[16],
                                  unsigned char *out) {
    __m512i st[8];
    for (int i = 0; i < 8; i++) st[i] = _mm512_set1_epi32((int)H[i]);
    size_t blocks[16], most = 0;
    for (int l = 0; l < 16; l++) {
        blocks[l] = (lengths[l] + 1 + 8) / 64 + 1;
        if (blocks[l] > most) most = blocks[l];
    }
    for (size_t k = 0; k < most; k++) {
        __m512i rows[16], w[16];
        __mmask16 active = 0;
        for (int l = 0; l < 16; l++) {
            if (k < blocks[l]) {
                rows[l] = lane_block(prefix, (const unsigned char *)messages[l], lengths[l], k, blocks[l]);
                active |= (__mmask16)(1u << l);
            } else {
                rows[l] = _mm512_setzero_si512();
            }
        }
        transpose(rows, w);
        compress16(st, w, active);
    }
    const __m512i bswap = _mm512_broadcast_i32x4(_mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL));
    uint32_t words[8][16] __attribute__((aligned(64)));
    for (int i = 0; i < 8; i++) _mm512_store_si512((void *)words[i], _mm512_shuffle_epi8(st[i], bswap));
    for (int l = 0; l < 16; l++)
        for (int i = 0; i < 8; i++) memcpy(out + 32 * l + 4 * i, &words[i][l], 4);
}

#else

int ballot_sha256_x16_available(void) { return 0; }
void ballot_sha256_x16(unsigned char prefix, const void *const messages[16], const size_t lengths[16], unsigned char *out) {
    (void)prefix; (void)messages; (void)lengths; (void)out;
    __builtin_trap();
}

#endif
