// checkproof checks a proof the daemon gave (`ballotctl --json proof …`, JSON on standard input)
// with Go's own golang.org/x/mod/sumdb/tlog, an RFC 6962 implementation nobody on this project
// wrote: an inclusion proof (`seq`, `size`, `leaf_hash`, `root`, `path`) with tlog.CheckRecord,
// a consistency proof (`old_size`, `new_size`, `old_root`, `new_root`, `path`) with
// tlog.CheckTree.
//
//	ballotctl --json proof --seq 6 | go run checkproof.go
//
// Prints "inclusion ok" or "consistency ok"; exits 1 with Go's error otherwise.
// Built offline from Debian's golang-golang-x-mod-dev: GOPATH=/usr/share/gocode GO111MODULE=off.
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

type proof struct {
	Seq      *int64   `json:"seq"`
	Size     int64    `json:"size"`
	LeafHash string   `json:"leaf_hash"`
	Root     string   `json:"root"`
	OldSize  *int64   `json:"old_size"`
	NewSize  int64    `json:"new_size"`
	OldRoot  string   `json:"old_root"`
	NewRoot  string   `json:"new_root"`
	Path     []string `json:"path"`
}

func fail(err interface{}) {
	fmt.Fprintln(os.Stderr, "checkproof:", err)
	os.Exit(1)
}

func hash(text string) tlog.Hash {
	b, err := hex.DecodeString(text)
	if err != nil || len(b) != tlog.HashSize {
		fail("not a hash: " + text)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var p proof
	if err := json.Unmarshal(input, &p); err != nil {
		fail(err)
	}
	path := make([]tlog.Hash, len(p.Path))
	for i, h := range p.Path {
		path[i] = hash(h)
	}
	switch {
	case p.Seq != nil:
		leaf := hash(p.LeafHash)
		// Events are numbered from 1; the tree's leaves from 0.
		if err := tlog.CheckRecord(tlog.RecordProof(path), p.Size, hash(p.Root), *p.Seq-1, leaf); err != nil {
			fail(err)
		}
		fmt.Println("inclusion ok")
	case p.OldSize != nil:
		if err := tlog.CheckTree(tlog.TreeProof(path), p.NewSize, hash(p.NewRoot), *p.OldSize, hash(p.OldRoot)); err != nil {
			fail(err)
		}
		fmt.Println("consistency ok")
	default:
		fail("neither an inclusion nor a consistency proof")
	}
}
