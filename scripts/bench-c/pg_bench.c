/* The PostgreSQL contenders of scripts/bench, over libpq, doing the daemon's work per vote: the
 * voter key is HMAC-SHA256 of the normalised voter id (votes_csv.h), computed here as part of
 * the timed work, into a table with unique indexes on vote_id and on (election, voter_key).
 * Every commit is durable (the server runs with fsync=on, synchronous_commit=on).
 *
 *   pg_bench schema CONNINFO
 *       drop and create the votes table, then CHECKPOINT (so a run does not pay for the last one)
 *   pg_bench import CONNINFO FILE.csv SECRET BATCH copy|insert
 *       load the CSV: COPY ... FROM STDIN, one COPY (one transaction) per BATCH rows, rows sent
 *       as they are read; or one INSERT ... VALUES (BATCH rows) ON CONFLICT DO NOTHING per batch
 *   pg_bench live CONNINFO SECRET WRITERS VOTES_PER_WRITER READERS QUERIES ELECTION TAG
 *       WRITERS connections each INSERT one vote at a time (autocommit: one durable transaction
 *       a vote), the next sent when the last is acknowledged; READERS connections run
 *       SELECT nominee, count(*) ... GROUP BY nominee back to back until the writers are done
 *       (or, with no writers, QUERIES in all). All connections are driven from one thread with
 *       epoll, like ballot-bench socket, so the client costs little of the shared cores.
 *
 * Each prints one JSON line. Build: cc -O2 -I/usr/include/postgresql pg_bench.c -lpq -lcrypto */
#include "votes_csv.h"
#include <errno.h>
#include <libpq-fe.h>
#include <sys/epoll.h>

static void die(PGconn *c, const char *what) {
    fprintf(stderr, "postgres: %s: %s", what, c ? PQerrorMessage(c) : "\n");
    exit(1);
}

static void check(PGresult *r, ExecStatusType want, const char *what) {
    if (PQresultStatus(r) != want) {
        fprintf(stderr, "postgres: %s: %s", what, PQresultErrorMessage(r));
        exit(1);
    }
}

static PGconn *connect_db(const char *conninfo) {
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) die(c, "connect");
    return c;
}

static void exec_command(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    check(r, PGRES_COMMAND_OK, sql);
    PQclear(r);
}

static const char *columns = "vote_id, election, voter_key, nominee, cast_at, channel";

static int schema(const char *conninfo) {
    PGconn *c = connect_db(conninfo);
    exec_command(c, "SET client_min_messages = warning");
    exec_command(c, "DROP TABLE IF EXISTS votes");
    exec_command(c, "CREATE TABLE votes(vote_id text NOT NULL, election text NOT NULL, voter_key bytea NOT NULL,"
                    " nominee text NOT NULL, cast_at timestamptz NOT NULL DEFAULT now(), channel text NOT NULL)");
    exec_command(c, "CREATE UNIQUE INDEX votes_vote_id ON votes(vote_id)");
    exec_command(c, "CREATE UNIQUE INDEX votes_voter ON votes(election, voter_key)");
    exec_command(c, "CHECKPOINT");
    PQfinish(c);
    printf("{\"impl\":\"postgres-schema\"}\n");
    return 0;
}

/* The INSERT of N rows: VALUES ($1..$6), ($7..$12), ... */
static char *insert_sql(int n) {
    size_t size = 200 + (size_t)n * 64;
    char *sql = malloc(size), *p = sql;
    p += sprintf(p, "INSERT INTO votes(%s) VALUES ", columns);
    for (int i = 0; i < n; i++) {
        int b = i * 6;
        p += sprintf(p, "%s($%d,$%d,$%d,$%d,$%d,$%d)", i ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6);
    }
    sprintf(p, " ON CONFLICT DO NOTHING");
    return sql;
}

static long finish_copy(PGconn *c) {
    if (PQputCopyEnd(c, NULL) != 1) die(c, "PQputCopyEnd");
    PGresult *r = PQgetResult(c);
    check(r, PGRES_COMMAND_OK, "COPY");
    long n = atol(PQcmdTuples(r));
    PQclear(r);
    while ((r = PQgetResult(c))) PQclear(r);
    return n;
}

static int import(const char *conninfo, const char *file, const char *secretPath, int batch, int copy) {
    vote_secret secret = read_secret(secretPath);
    PGconn *c = connect_db(conninfo);
    FILE *in = fopen(file, "r");
    if (!in) { perror(file); return 1; }
    /* The insert mode keeps a batch's rows until the statement is sent. */
    char *arena = malloc((size_t)batch * 512);
    unsigned char (*keys)[32] = malloc((size_t)batch * 32);
    const char **values = malloc((size_t)batch * 6 * sizeof *values);
    int *lengths = calloc((size_t)batch * 6, sizeof *lengths), *formats = calloc((size_t)batch * 6, sizeof *formats);
    char copyStatement[200];
    snprintf(copyStatement, sizeof copyStatement, "COPY votes(%s) FROM STDIN", columns);
    if (!copy) {
        PGresult *r = PQprepare(c, "batch", insert_sql(batch), 0, NULL);
        check(r, PGRES_COMMAND_OK, "prepare INSERT");
        PQclear(r);
    }
    char *line = NULL;
    size_t capacity = 0;
    ssize_t n;
    long rows = 0, inserted = 0;
    int inBatch = 0;
    size_t used = 0;
    unsigned long long t0 = now_ns();
    getline(&line, &capacity, in); /* header */
    for (;;) {
        n = getline(&line, &capacity, in);
        char *field[6];
        if (n > 0 && !split_row(line, n, field)) continue;
        if (n > 0) {
            unsigned char key[32];
            voter_key(&secret, field[2], key);
            rows++;
            if (copy) {
                if (inBatch == 0) {
                    PGresult *r = PQexec(c, copyStatement);
                    check(r, PGRES_COPY_IN, copyStatement);
                    PQclear(r);
                }
                /* COPY text format: bytea in hex, its backslash escaped. The generated files
                 * hold no tab, backslash or newline inside a field. */
                char row[1024], *p = row;
                p += snprintf(p, 600, "%s\t%s\t\\\\x", field[0], field[1]);
                for (int i = 0; i < 32; i++) p += sprintf(p, "%02x", key[i]);
                p += snprintf(p, 360, "\t%s\t%s\t%s\n", field[3], field[4], field[5]);
                if (PQputCopyData(c, row, (int)(p - row)) != 1) die(c, "PQputCopyData");
                if (++inBatch == batch) { inserted += finish_copy(c); inBatch = 0; }
            } else {
                memcpy(keys[inBatch], key, 32);
                const char **v = values + inBatch * 6;
                for (int f = 0; f < 6; f++) {
                    if (f == 2) continue;
                    size_t l = strlen(field[f]) + 1;
                    if (used + l > (size_t)batch * 512) { fprintf(stderr, "pg_bench: row %ld too long\n", rows); return 1; }
                    v[f] = memcpy(arena + used, field[f], l);
                    used += l;
                }
                v[2] = (const char *)keys[inBatch];
                lengths[inBatch * 6 + 2] = 32;
                formats[inBatch * 6 + 2] = 1; /* the key goes as 32 raw bytes */
                inBatch++;
            }
        }
        if (!copy && inBatch > 0 && (inBatch == batch || n <= 0)) {
            PGresult *r;
            if (inBatch == batch) {
                r = PQexecPrepared(c, "batch", batch * 6, values, lengths, formats, 0);
            } else {
                r = PQexecParams(c, insert_sql(inBatch), inBatch * 6, NULL, values, lengths, formats, 0);
            }
            check(r, PGRES_COMMAND_OK, "INSERT batch");
            inserted += atol(PQcmdTuples(r));
            PQclear(r);
            inBatch = 0;
            used = 0;
        }
        if (n <= 0) break;
    }
    if (copy && inBatch > 0) inserted += finish_copy(c);
    double seconds = (double)(now_ns() - t0) / 1e9;
    printf("{\"impl\":\"postgres-%s\",\"rows\":%ld,\"inserted\":%ld,\"seconds\":%.3f,\"rows_per_second\":%.0f}\n",
           copy ? "copy" : "insert", rows, inserted, seconds, rows / seconds);
    PQfinish(c);
    return 0;
}

typedef struct {
    PGconn *conn;
    int writer; /* else a reader */
    long next, count;
    unsigned long long sentAt;
    int okSoFar;
} connection;

static const char *nominees[] = {"bodo", "haugesund", "kinn", "raelingen", "vennesla"};

static void send_next(connection *k, int index, const vote_secret *secret, const char *election, const char *tag) {
    if (k->writer) {
        char voteID[96], voter[128];
        unsigned char key[32];
        snprintf(voteID, sizeof voteID, "live-%s-%d-%ld", tag, index, k->next);
        snprintf(voter, sizeof voter, "live-%s-%d-%ld@example.no", tag, index, k->next);
        k->sentAt = now_ns();
        voter_key(secret, voter, key);
        const char *values[4] = {voteID, election, (const char *)key, nominees[(index + k->next) % 5]};
        int lengths[4] = {0, 0, 32, 0}, formats[4] = {0, 0, 1, 0};
        if (!PQsendQueryPrepared(k->conn, "vote", 4, values, lengths, formats, 0)) die(k->conn, "send INSERT");
    } else {
        const char *values[1] = {election};
        k->sentAt = now_ns();
        if (!PQsendQueryPrepared(k->conn, "tally", 1, values, NULL, NULL, 0)) die(k->conn, "send SELECT");
    }
    while (PQflush(k->conn) == 1) {} /* a few hundred bytes: gone at once in practice */
    k->okSoFar = 1;
}

static int live(const char *conninfo, const char *secretPath, int writers, long votesPerWriter, int readers, long queries,
                const char *election, const char *tag) {
    vote_secret secret = read_secret(secretPath);
    int total = writers + readers;
    connection *k = calloc((size_t)total, sizeof *k);
    int ep = epoll_create1(0);
    for (int i = 0; i < total; i++) {
        k[i].conn = connect_db(conninfo);
        k[i].writer = i < writers;
        PGresult *r = k[i].writer
            ? PQprepare(k[i].conn, "vote", "INSERT INTO votes(vote_id, election, voter_key, nominee, channel) VALUES ($1, $2, $3, $4, 'web')", 4, NULL)
            : PQprepare(k[i].conn, "tally", "SELECT nominee, count(*) FROM votes WHERE election = $1 GROUP BY nominee", 1, NULL);
        check(r, PGRES_COMMAND_OK, "prepare");
        PQclear(r);
        if (PQsetnonblocking(k[i].conn, 1)) die(k[i].conn, "PQsetnonblocking");
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, PQsocket(k[i].conn), &e)) { perror("epoll_ctl"); return 1; }
    }
    long totalVotes = (long)writers * votesPerWriter;
    unsigned long long *voteLatency = malloc(sizeof *voteLatency * (size_t)(totalVotes + 1));
    long queryCapacity = 1 << 16, nVotes = 0, nQueries = 0, failures = 0;
    unsigned long long *queryLatency = malloc(sizeof *queryLatency * (size_t)queryCapacity);
    int writersLeft = writers, readersLeft = readers;
    long queriesSent = 0;
    unsigned long long start = now_ns();
    for (int i = 0; i < total; i++) {
        if (!k[i].writer && writers == 0 && queriesSent >= queries) { readersLeft--; continue; }
        if (!k[i].writer) queriesSent++;
        send_next(&k[i], i, &secret, election, tag);
    }
    struct epoll_event events[256];
    while (writers > 0 ? writersLeft > 0 : readersLeft > 0) {
        int ready = epoll_wait(ep, events, 256, 60000);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) { fprintf(stderr, "postgres: no reply in 60 s\n"); return 1; }
        for (int e = 0; e < ready; e++) {
            connection *c = &k[events[e].data.u32];
            if (!PQconsumeInput(c->conn)) die(c->conn, "PQconsumeInput");
            int done = 0;
            while (!PQisBusy(c->conn)) {
                PGresult *r = PQgetResult(c->conn);
                if (!r) { done = 1; break; }
                ExecStatusType s = PQresultStatus(r);
                if (s != (c->writer ? PGRES_COMMAND_OK : PGRES_TUPLES_OK)) {
                    if (failures == 0) fprintf(stderr, "postgres: first failure: %s", PQresultErrorMessage(r));
                    c->okSoFar = 0;
                }
                PQclear(r);
            }
            if (!done) continue;
            unsigned long long latency = now_ns() - c->sentAt;
            if (!c->okSoFar) failures++;
            if (c->writer) {
                if (c->okSoFar) voteLatency[nVotes++] = latency;
                if (++c->next < votesPerWriter) send_next(c, (int)(c - k), &secret, election, tag); else writersLeft--;
            } else {
                if (c->okSoFar) {
                    if (nQueries == queryCapacity) queryLatency = realloc(queryLatency, sizeof *queryLatency * (size_t)(queryCapacity *= 2));
                    queryLatency[nQueries++] = latency;
                }
                int more = writers > 0 ? writersLeft > 0 : queriesSent < queries;
                if (more) { queriesSent++; send_next(c, (int)(c - k), &secret, election, tag); } else readersLeft--;
            }
        }
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    /* Readers still waiting for a query when the writers finish are left unfinished. */
    qsort(voteLatency, (size_t)nVotes, sizeof *voteLatency, compare_u64);
    qsort(queryLatency, (size_t)nQueries, sizeof *queryLatency, compare_u64);
    printf("{\"impl\":\"postgres\",\"clients\":%d,\"readers\":%d,\"acked_votes\":%ld,\"failures\":%ld,\"seconds\":%.6f,"
           "\"acked_votes_per_second\":%.1f,\"vote_p50_ms\":%.4f,\"vote_p99_ms\":%.4f,\"vote_p999_ms\":%.4f,"
           "\"queries\":%ld,\"queries_per_second\":%.1f,\"query_p50_ms\":%.4f,\"query_p99_ms\":%.4f,\"query_p999_ms\":%.4f}\n",
           writers, readers, nVotes, failures, seconds, nVotes / seconds, percentile_ms(voteLatency, nVotes, 0.5),
           percentile_ms(voteLatency, nVotes, 0.99), percentile_ms(voteLatency, nVotes, 0.999), nQueries, nQueries / seconds,
           percentile_ms(queryLatency, nQueries, 0.5), percentile_ms(queryLatency, nQueries, 0.99), percentile_ms(queryLatency, nQueries, 0.999));
    for (int i = 0; i < total; i++) PQfinish(k[i].conn);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "schema")) return schema(argv[2]);
    if (argc == 7 && !strcmp(argv[1], "import") && (!strcmp(argv[6], "copy") || !strcmp(argv[6], "insert")))
        return import(argv[2], argv[3], argv[4], atoi(argv[5]), !strcmp(argv[6], "copy"));
    if (argc == 10 && !strcmp(argv[1], "live"))
        return live(argv[2], argv[3], atoi(argv[4]), atol(argv[5]), atoi(argv[6]), atol(argv[7]), argv[8], argv[9]);
    fprintf(stderr, "usage: pg_bench schema CONNINFO\n"
                    "       pg_bench import CONNINFO FILE.csv SECRET BATCH copy|insert\n"
                    "       pg_bench live CONNINFO SECRET WRITERS VOTES_PER_WRITER READERS QUERIES ELECTION TAG\n");
    return 64;
}
