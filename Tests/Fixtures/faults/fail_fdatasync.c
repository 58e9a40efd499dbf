/* An LD_PRELOAD shim for the storage-fault tests (issue 18, method 2): while the file named by
 * BALLOT_FAULT_FDATASYNC exists, the next fdatasync(2) removes it and fails with EIO, without
 * syncing, as a disk that lost the write would. Every other call is the real one. Built by
 * the test with `cc -shared -fPIC`; LMDB syncs a commit's pages with fdatasync on Linux. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *trigger = getenv("BALLOT_FAULT_FDATASYNC");
    if (trigger && unlink(trigger) == 0) {   /* unlink claims the fault: it fires once */
        errno = EIO;
        return -1;
    }
    return real(fd);
}
