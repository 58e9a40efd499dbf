/* A reader for a line-protocol socket (ballotd's): sends one request line, waits for the reply
 * line, records the latency and sends again, back to back, until SIGTERM or SIGINT or MAX_SECONDS.
 * scripts/bench runs it beside `ballot-bench socket`, whose readers only ask for `tally`, to time
 * `ranking` under the same load. A reply without "ok":true counts as a failure.
 *
 *   line_query SOCKET REQUEST_LINE MAX_SECONDS
 * Build: cc -O2 line_query.c -lcrypto */
#include "votes_csv.h"
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: line_query SOCKET REQUEST_LINE MAX_SECONDS\n"); return 64; }
    struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: a blocked read returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror(argv[1]); return 1; }
    char request[4096];
    int requestLength = snprintf(request, sizeof request, "%s\n", argv[2]);
    unsigned long long deadline = now_ns() + (unsigned long long)(atof(argv[3]) * 1e9);
    long capacity = 1 << 16, count = 0, failures = 0;
    unsigned long long *latency = malloc(sizeof *latency * capacity);
    static char reply[1 << 20];
    unsigned long long start = now_ns();
    while (!stop && now_ns() < deadline) {
        unsigned long long t = now_ns();
        if (write(fd, request, requestLength) != requestLength) { if (errno == EINTR) break; perror("write"); return 1; }
        size_t used = 0;
        char *nl = NULL;
        while (!nl) {
            ssize_t r = read(fd, reply + used, sizeof reply - 1 - used);
            if (r < 0 && errno == EINTR) goto done;
            if (r <= 0) { fprintf(stderr, "line_query: the server closed the connection\n"); return 1; }
            used += r;
            reply[used] = 0;
            nl = memchr(reply, '\n', used);
        }
        *nl = 0;
        if (!strstr(reply, "\"ok\":true")) { if (!failures) fprintf(stderr, "line_query: refused: %s\n", reply); failures++; continue; }
        if (count == capacity) latency = realloc(latency, sizeof *latency * (capacity *= 2));
        latency[count++] = now_ns() - t;
    }
done:;
    double seconds = (double)(now_ns() - start) / 1e9;
    qsort(latency, count, sizeof *latency, compare_u64);
    printf("{\"impl\":\"line_query\",\"queries\":%ld,\"failures\":%ld,\"seconds\":%.3f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f}\n",
           count, failures, seconds, percentile_ms(latency, count, 0.5), percentile_ms(latency, count, 0.99), percentile_ms(latency, count, 0.999));
    return 0;
}
