// checktiles reads a tiles directory the daemon or `ballot-replay tiles` wrote
// (c2sp.org/tlog-tiles) with Go's own golang.org/x/mod/sumdb/note and sumdb/tlog, which nobody
// on this project wrote: it opens the checkpoint with the log's key, reads the tree through
// tlog.TileHashReader (which checks every tile it reads against the checkpoint's root), and for
// every entry of every bundle checks that its record hash is the one in its level-0 tile, and
// for one entry of each bundle (each of a bundle under 257 entries) that tlog.CheckRecord finds
// it in the tree; given an older checkpoint's size and base64 root, it checks with
// tlog.CheckTree that the tree extends it.
//
//	go run checktiles.go DIR ORIGIN PUBHEX [OLDSIZE OLDROOT]
//
// Go's tile paths carry the tile height (tile/8/0/…, tile/8/data/…); tlog-tiles' do not
// (tile/0/…, tile/entries/…): the reader below maps one to the other, and nothing else.
// Prints "ok: N entries" or exits 1 with what Go refused.
// Built offline from Debian's golang-golang-x-mod-dev: GOPATH=/usr/share/gocode GO111MODULE=off.
package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(err interface{}) {
	fmt.Fprintln(os.Stderr, "checktiles:", err)
	os.Exit(1)
}

// tiles reads tlog-tiles files from a directory for tlog.TileHashReader.
type tiles struct{ dir string }

func (t tiles) Height() int { return 8 }

// path maps Go's tile path to tlog-tiles': drop the height, "data" is "entries".
func (t tiles) path(tile tlog.Tile) string {
	p := strings.TrimPrefix(tile.Path(), "tile/8/")
	p = strings.Replace(p, "data/", "entries/", 1)
	return filepath.Join(t.dir, "tile", p)
}

func (t tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(list))
	for i, tile := range list {
		data, err := os.ReadFile(t.path(tile))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) != 4 && len(os.Args) != 6 {
		fail("usage: checktiles DIR ORIGIN PUBHEX [OLDSIZE OLDROOT]")
	}
	dir, origin := os.Args[1], os.Args[2]
	key, err := hex.DecodeString(os.Args[3])
	if err != nil || len(key) != ed25519.PublicKeySize {
		fail("not an Ed25519 public key in hex: " + os.Args[3])
	}
	vkey, err := note.NewEd25519VerifierKey(origin, ed25519.PublicKey(key))
	if err != nil {
		fail(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail(err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail(err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail(err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != origin {
		fail("the checkpoint's text is not origin, size, root: " + n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail(err)
	}
	tree := tlog.Tree{N: size, Hash: decodeHash(lines[2])}
	reader := tiles{dir}
	hashes := tlog.TileHashReader(tree, reader)
	// Every entry of every bundle: its record hash, and its inclusion in the tree.
	for start := int64(0); start < size; start += 256 {
		w := size - start
		if w > 256 {
			w = 256
		}
		bundle := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)}
		data, err := reader.ReadTiles([]tlog.Tile{bundle})
		if err != nil {
			fail(err)
		}
		entries := data[0]
		level0, err := reader.ReadTiles([]tlog.Tile{{H: 8, L: 0, N: start / 256, W: int(w)}})
		if err != nil {
			fail(err)
		}
		if len(level0[0]) != int(w)*tlog.HashSize {
			fail(fmt.Sprintf("the level-0 tile of entries %d to %d is %d bytes, not %d", start, start+w-1, len(level0[0]), int(w)*tlog.HashSize))
		}
		for i := int64(0); i < w; i++ {
			if len(entries) < 2 {
				fail(fmt.Sprintf("bundle %s ends before entry %d", reader.path(bundle), start+i))
			}
			length := int(binary.BigEndian.Uint16(entries))
			if len(entries) < 2+length {
				fail(fmt.Sprintf("bundle %s: entry %d is cut short", reader.path(bundle), start+i))
			}
			leaf := tlog.RecordHash(entries[2 : 2+length])
			entries = entries[2+length:]
			if string(leaf[:]) != string(level0[0][i*tlog.HashSize:(i+1)*tlog.HashSize]) {
				fail(fmt.Sprintf("entry %d does not hash to its leaf in the level-0 tile", start+i))
			}
			if size > 256 && i != (start/256)%w {
				continue
			}
			proof, err := tlog.ProveRecord(size, start+i, hashes)
			if err != nil {
				fail(fmt.Sprintf("entry %d: %v", start+i, err))
			}
			if err := tlog.CheckRecord(proof, size, tree.Hash, start+i, leaf); err != nil {
				fail(fmt.Sprintf("entry %d: %v", start+i, err))
			}
		}
		if len(entries) != 0 {
			fail(fmt.Sprintf("bundle %s has %d bytes after its %d entries", reader.path(bundle), len(entries), w))
		}
	}
	if len(os.Args) == 6 {
		old, err := strconv.ParseInt(os.Args[4], 10, 64)
		if err != nil {
			fail(err)
		}
		proof, err := tlog.ProveTree(size, old, hashes)
		if err != nil {
			fail(err)
		}
		if err := tlog.CheckTree(proof, size, tree.Hash, old, decodeHash(os.Args[5])); err != nil {
			fail(err)
		}
	}
	fmt.Printf("ok: %d entries\n", size)
}

func decodeHash(text string) tlog.Hash {
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(b) != tlog.HashSize {
		fail("not a base64 hash: " + text)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}
