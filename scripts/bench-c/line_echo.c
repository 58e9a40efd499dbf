/* Ceiling for the daemon load benchmark: a single-threaded epoll server on a Unix socket that
 * answers every request line at once with a fixed reply, doing no other work. Driven by the
 * same load generator (ballot-bench socket), it shows what this machine's kernel and the
 * 64-blocking-clients shape allow on their own.
 *
 *   line_echo SOCKET_PATH
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAXC 4096
static char buf[MAXC][4096];
static int used[MAXC];

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: line_echo SOCKET\n"); return 64; }
    unlink(argv[1]);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) { perror("bind/listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    const char reply[] = "{\"id\":0,\"ok\":true,\"result\":{\"seq\":1,\"leaf_hash\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"repeated\":false}}\n";
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == s) {
                int c = accept(s, NULL, NULL);
                if (c >= 0 && c < MAXC) { used[c] = 0; struct epoll_event ce = { .events = EPOLLIN, .data.fd = c }; epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce); }
                continue;
            }
            ssize_t r = read(fd, buf[fd] + used[fd], sizeof buf[fd] - used[fd]);
            if (r <= 0) { close(fd); continue; }
            used[fd] += r;
            char *start = buf[fd], *nl;
            while ((nl = memchr(start, '\n', buf[fd] + used[fd] - start))) {
                if (write(fd, reply, sizeof reply - 1) < 0) break;
                start = nl + 1;
            }
            used[fd] -= start - buf[fd];
            memmove(buf[fd], start, used[fd]);
        }
    }
}
