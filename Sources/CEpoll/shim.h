#ifndef BALLOTLEDGER_CEPOLL_SHIM_H
#define BALLOTLEDGER_CEPOLL_SHIM_H
// epoll(7), which Swift's Glibc module leaves out; for the load generator in ballot-bench.
#include <sys/epoll.h>
#endif
