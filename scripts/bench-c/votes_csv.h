/* What every C contender of the benchmarks shares, so that they all do the same work per row:
 * read the HMAC secret, split a CSV vote row (as `ballotctl generate` writes them: no quoted
 * fields), and compute the voter key as ballotd does (HMAC-SHA256 with the secret over the id
 * trimmed of ASCII whitespace and with ASCII capitals lower-cased). Header-only: each program
 * is one `cc` call. */
#ifndef VOTES_CSV_H
#define VOTES_CSV_H

#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { unsigned char bytes[256]; size_t length; } vote_secret;

static inline vote_secret read_secret(const char *path) {
    vote_secret s;
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    s.length = fread(s.bytes, 1, sizeof s.bytes, f);
    fclose(f);
    if (s.length < 16) { fprintf(stderr, "%s: a secret needs 16 bytes or more\n", path); exit(1); }
    return s;
}

/* Splits LINE in place into the 6 columns vote_id, election, voter, nominee, cast_at, channel
 * (channel optional). Strips the line end. Returns 0 for a row with fewer than 5 columns. */
static inline int split_row(char *line, ssize_t n, char *field[6]) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    int count = 0;
    char *p = line;
    field[count++] = p;
    for (; *p && count < 6; p++) if (*p == ',') { *p = 0; field[count++] = p + 1; }
    if (count < 5) return 0;
    if (count == 5) field[5] = "";
    return 1;
}

/* The voter key of VOTER (changed in place: lower-cased). */
static inline void voter_key(const vote_secret *s, char *voter, unsigned char key[32]) {
    char *v = voter;
    while (*v == ' ' || (*v >= 9 && *v <= 13)) v++;
    size_t vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == ' ' || (v[vl - 1] >= 9 && v[vl - 1] <= 13))) vl--;
    for (size_t i = 0; i < vl; i++) if (v[i] >= 'A' && v[i] <= 'Z') v[i] += 32;
    unsigned int keyLength = 32;
    HMAC(EVP_sha256(), s->bytes, (int)s->length, (unsigned char *)v, vl, key, &keyLength);
}

static inline unsigned long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static inline int compare_u64(const void *a, const void *b) {
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

/* Percentile P of N sorted latencies in ns, in ms, picked as ballot-bench socket picks them. */
static inline double percentile_ms(const unsigned long long *sorted, long n, double p) {
    if (n == 0) return 0;
    long i = (long)((double)n * p);
    if (i > n - 1) i = n - 1;
    return (double)sorted[i] / 1e6;
}

#endif
