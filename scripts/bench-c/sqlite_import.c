/* The SQLite baseline of scripts/bench-import and scripts/bench: loads the same CSV vote file the
 * same way the daemon does the job — HMAC-SHA256 of each voter id (normalised the same way), a
 * unique index on the voter key per election and on vote_id, WAL mode, synchronous=FULL, one
 * transaction per batch of the same size. Rows that break a unique index are counted, not fatal.
 * CACHE_KIB, if given, sets the page cache (PRAGMA cache_size=-CACHE_KIB); SQLite's default is
 * 2 MB, far smaller than the two indexes of a million rows.
 * Build: cc -O2 -o sqlite_import sqlite_import.c -lsqlite3 -lcrypto
 * Usage: sqlite_import DB FILE.csv SECRET_FILE BATCH [CACHE_KIB] */
#include "votes_csv.h"
#include <sqlite3.h>

static void die(sqlite3 *db, const char *what) {
    fprintf(stderr, "%s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: sqlite_import DB FILE SECRET BATCH [CACHE_KIB]\n"); return 64; }
    vote_secret secret = read_secret(argv[3]);
    int batch = atoi(argv[4]);
    long cacheKiB = argc == 6 ? atol(argv[5]) : 0;
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) die(db, "open");
    const char *setup =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE votes(seq INTEGER PRIMARY KEY, vote_id TEXT NOT NULL, election TEXT NOT NULL, voter BLOB NOT NULL,"
        " nominee TEXT NOT NULL, cast_at TEXT NOT NULL, channel TEXT NOT NULL);"
        "CREATE UNIQUE INDEX votes_vote_id ON votes(vote_id);"
        "CREATE UNIQUE INDEX votes_voter ON votes(election, voter);";
    if (sqlite3_exec(db, setup, 0, 0, 0) != SQLITE_OK) die(db, "setup");
    if (cacheKiB > 0) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%ld", cacheKiB);
        if (sqlite3_exec(db, pragma, 0, 0, 0) != SQLITE_OK) die(db, "cache_size");
    }
    sqlite3_stmt *insert;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO votes(vote_id, election, voter, nominee, cast_at, channel) VALUES (?,?,?,?,?,?)",
                           -1, &insert, 0) != SQLITE_OK) die(db, "prepare");
    FILE *in = fopen(argv[2], "r");
    if (!in) { perror(argv[2]); return 1; }
    char *line = NULL;
    size_t capacity = 0;
    ssize_t n;
    long rows = 0, inserted = 0, inBatch = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    getline(&line, &capacity, in); /* header */
    sqlite3_exec(db, "BEGIN", 0, 0, 0);
    while ((n = getline(&line, &capacity, in)) > 0) {
        char *field[6];
        if (!split_row(line, n, field)) continue;
        unsigned char key[32];
        voter_key(&secret, field[2], key);
        sqlite3_bind_text(insert, 1, field[0], -1, SQLITE_STATIC);
        sqlite3_bind_text(insert, 2, field[1], -1, SQLITE_STATIC);
        sqlite3_bind_blob(insert, 3, key, 32, SQLITE_STATIC);
        sqlite3_bind_text(insert, 4, field[3], -1, SQLITE_STATIC);
        sqlite3_bind_text(insert, 5, field[4], -1, SQLITE_STATIC);
        sqlite3_bind_text(insert, 6, field[5], -1, SQLITE_STATIC);
        if (sqlite3_step(insert) != SQLITE_DONE) die(db, "insert");
        inserted += sqlite3_changes(db);
        sqlite3_reset(insert);
        rows++;
        if (++inBatch == batch) {
            if (sqlite3_exec(db, "COMMIT; BEGIN", 0, 0, 0) != SQLITE_OK) die(db, "commit");
            inBatch = 0;
        }
    }
    if (sqlite3_exec(db, "COMMIT", 0, 0, 0) != SQLITE_OK) die(db, "commit");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("{\"impl\":\"sqlite\",\"rows\":%ld,\"inserted\":%ld,\"seconds\":%.3f,\"rows_per_second\":%.0f}\n", rows, inserted, seconds, rows / seconds);
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return 0;
}
