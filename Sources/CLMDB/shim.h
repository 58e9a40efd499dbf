#ifndef BALLOTLEDGER_CLMDB_SHIM_H
#define BALLOTLEDGER_CLMDB_SHIM_H
#include <lmdb.h>
#endif
