/* The SQLite baseline of scripts/bench-import: loads the same CSV vote file the same way the
 * daemon does the job — HMAC-SHA256 of each voter id (normalised the same way), a unique index
 * on the voter key per election and on vote_id, WAL mode, synchronous=FULL, one transaction per
 * batch of the same size. Rows that break a unique index are counted, not fatal.
 * Build: cc -O2 -o sqlite_import sqlite_import.c -lsqlite3 -lcrypto
 * Usage: sqlite_import DB FILE.csv SECRET_FILE BATCH */
#include <ctype.h>
#include <openssl/hmac.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(sqlite3 *db, const char *what) {
    fprintf(stderr, "%s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: sqlite_import DB FILE SECRET BATCH\n"); return 64; }
    FILE *secretFile = fopen(argv[3], "rb");
    unsigned char secret[256];
    size_t secretLength = fread(secret, 1, sizeof secret, secretFile);
    fclose(secretFile);
    int batch = atoi(argv[4]);
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) die(db, "open");
    const char *setup =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE votes(seq INTEGER PRIMARY KEY, vote_id TEXT NOT NULL, election TEXT NOT NULL, voter BLOB NOT NULL,"
        " nominee TEXT NOT NULL, cast_at TEXT NOT NULL, channel TEXT NOT NULL);"
        "CREATE UNIQUE INDEX votes_vote_id ON votes(vote_id);"
        "CREATE UNIQUE INDEX votes_voter ON votes(election, voter);";
    if (sqlite3_exec(db, setup, 0, 0, 0) != SQLITE_OK) die(db, "setup");
    sqlite3_stmt *insert;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO votes(vote_id, election, voter, nominee, cast_at, channel) VALUES (?,?,?,?,?,?)",
                           -1, &insert, 0) != SQLITE_OK) die(db, "prepare");
    FILE *in = fopen(argv[2], "r");
    char *line = NULL;
    size_t capacity = 0;
    ssize_t n;
    long rows = 0, inserted = 0, inBatch = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    getline(&line, &capacity, in); /* header */
    sqlite3_exec(db, "BEGIN", 0, 0, 0);
    while ((n = getline(&line, &capacity, in)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        char *field[6];
        int count = 0;
        char *p = line;
        field[count++] = p;
        for (; *p && count < 6; p++) if (*p == ',') { *p = 0; field[count++] = p + 1; }
        if (count < 5) continue;
        if (count == 5) field[5] = "";
        /* The voter key: HMAC over the id trimmed and with ASCII capitals lower-cased. */
        char *v = field[2];
        while (*v == ' ' || (*v >= 9 && *v <= 13)) v++;
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || (v[vl - 1] >= 9 && v[vl - 1] <= 13))) vl--;
        for (size_t i = 0; i < vl; i++) if (v[i] >= 'A' && v[i] <= 'Z') v[i] += 32;
        unsigned char key[32];
        unsigned int keyLength = 32;
        HMAC(EVP_sha256(), secret, (int)secretLength, (unsigned char *)v, vl, key, &keyLength);
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
