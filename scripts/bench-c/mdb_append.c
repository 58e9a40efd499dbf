/* Baseline for the ledger append benchmark: a bare loop of mdb_put(MDB_APPEND) of N records of
 * a fixed size, B per transaction, each commit durable, no hashing and no other work.
 *
 *   mdb_append DIR N B RECORD_BYTES
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CHECK(call) do { int rc_ = (call); if (rc_) { fprintf(stderr, "%s: %s\n", #call, mdb_strerror(rc_)); exit(1); } } while (0)

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: mdb_append DIR N B RECORD_BYTES\n"); return 64; }
    const char *dir = argv[1];
    long n = atol(argv[2]), b = atol(argv[3]), size = atol(argv[4]);
    mkdir(dir, 0700);
    MDB_env *env; MDB_dbi dbi; MDB_txn *txn;
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_mapsize(env, (size_t)1 << 32));
    CHECK(mdb_env_set_maxdbs(env, 4));
    CHECK(mdb_env_open(env, dir, MDB_NOTLS, 0600));
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, "events", MDB_CREATE, &dbi));
    CHECK(mdb_txn_commit(txn));

    unsigned char *value = malloc(size);
    for (long i = 0; i < size; i++) value[i] = (unsigned char)(i * 31);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long first = 0; first < n; first += b) {
        CHECK(mdb_txn_begin(env, NULL, 0, &txn));
        for (long i = first; i < first + b && i < n; i++) {
            uint64_t seq = __builtin_bswap64((uint64_t)i + 1);
            memcpy(value + 2, &seq, 8);
            MDB_val k = { 8, &seq }, v = { (size_t)size, value };
            CHECK(mdb_put(txn, dbi, &k, &v, MDB_APPEND));
        }
        CHECK(mdb_txn_commit(txn));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("{\"impl\":\"c_mdb_append\",\"votes\":%ld,\"batch\":%ld,\"record_bytes\":%ld,\"seconds\":%f,\"votes_per_second\":%f}\n", n, b, size, s, n / s);
    mdb_env_close(env);
    return 0;
}
