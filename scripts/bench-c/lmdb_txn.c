/* The floor of the live-vote shape for one client: one durable LMDB write transaction per vote
 * (mdb_txn_begin, mdb_put of one record the size of a vote, mdb_txn_commit with the default
 * flags, so every commit syncs the disk), one after the other, each one's latency recorded.
 * No socket, no hashing, no rules: what any ledger on LMDB pays for acknowledging votes one
 * at a time.
 *
 *   lmdb_txn DIR N RECORD_BYTES
 * Build: cc -O2 lmdb_txn.c -llmdb -lcrypto */
#include "votes_csv.h"
#include <lmdb.h>
#include <stdint.h>
#include <sys/stat.h>

#define CHECK(call) do { int rc_ = (call); if (rc_) { fprintf(stderr, "%s: %s\n", #call, mdb_strerror(rc_)); exit(1); } } while (0)

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: lmdb_txn DIR N RECORD_BYTES\n"); return 64; }
    long n = atol(argv[2]), size = atol(argv[3]);
    mkdir(argv[1], 0700);
    MDB_env *env; MDB_dbi dbi; MDB_txn *txn;
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_mapsize(env, (size_t)1 << 30));
    CHECK(mdb_env_set_maxdbs(env, 4));
    CHECK(mdb_env_open(env, argv[1], MDB_NOTLS, 0600));
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, "events", MDB_CREATE, &dbi));
    CHECK(mdb_txn_commit(txn));
    unsigned char *value = malloc(size);
    for (long i = 0; i < size; i++) value[i] = (unsigned char)(i * 31);
    unsigned long long *latency = malloc(sizeof *latency * n);
    unsigned long long start = now_ns();
    for (long i = 0; i < n; i++) {
        unsigned long long t = now_ns();
        uint64_t seq = __builtin_bswap64((uint64_t)i + 1);
        memcpy(value + 2, &seq, 8);
        MDB_val k = { 8, &seq }, v = { (size_t)size, value };
        CHECK(mdb_txn_begin(env, NULL, 0, &txn));
        CHECK(mdb_put(txn, dbi, &k, &v, MDB_APPEND));
        CHECK(mdb_txn_commit(txn));
        latency[i] = now_ns() - t;
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    qsort(latency, n, sizeof *latency, compare_u64);
    printf("{\"impl\":\"lmdb-txn-per-vote\",\"clients\":1,\"acked_votes\":%ld,\"record_bytes\":%ld,\"seconds\":%.6f,"
           "\"acked_votes_per_second\":%.1f,\"vote_p50_ms\":%.4f,\"vote_p99_ms\":%.4f,\"vote_p999_ms\":%.4f}\n",
           n, size, seconds, n / seconds, percentile_ms(latency, n, 0.5), percentile_ms(latency, n, 0.99), percentile_ms(latency, n, 0.999));
    mdb_env_close(env);
    return 0;
}
