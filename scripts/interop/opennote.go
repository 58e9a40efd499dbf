// opennote opens a checkpoint note with Go's own golang.org/x/mod/sumdb/note, an
// implementation of c2sp.org/signed-note that nobody on this project wrote, and prints what it
// verified: the note's text, then one line per verified signature ("verified NAME HASH").
//
//	go run opennote.go ORIGIN PUBKEY_HEX NOTE_FILE [WITNESS_NAME=PUBKEY_HEX ...]
//
// Each witness is checked as c2sp.org/tlog-cosignature says for its timestamped Ed25519 form
// (key ID type 0x04; a u64 timestamp, then the signature of "cosignature/v1", "time T" and
// the note's text). The Go package predates cosignatures, so that verifier is written here, in
// Go, from the spec, and note.Open runs it as it runs its own.
//
// Exits 1, with Go's error, when the note does not open under the key named ORIGIN, or a
// witness given has no valid cosignature on it.
// Built offline from Debian's golang-golang-x-mod-dev: GOPATH=/usr/share/gocode GO111MODULE=off.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// cosignatureVerifier checks a v1 Ed25519 cosignature (c2sp.org/tlog-cosignature).
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func newCosignatureVerifier(name string, key ed25519.PublicKey) *cosignatureVerifier {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{0x04})
	h.Write(key)
	return &cosignatureVerifier{name: name, hash: binary.BigEndian.Uint32(h.Sum(nil)), key: key}
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t >= 1<<63 {
		return false
	}
	m := fmt.Sprintf("cosignature/v1\ntime %d\n%s", t, msg)
	return ed25519.Verify(v.key, []byte(m), sig[8:])
}

func fail(err interface{}) {
	fmt.Fprintln(os.Stderr, "opennote:", err)
	os.Exit(1)
}

func publicKey(text string) ed25519.PublicKey {
	pub, err := hex.DecodeString(text)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		fmt.Fprintln(os.Stderr, "opennote: a public key is 64 hex digits")
		os.Exit(64)
	}
	return ed25519.PublicKey(pub)
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: opennote ORIGIN PUBKEY_HEX NOTE_FILE [WITNESS_NAME=PUBKEY_HEX ...]")
		os.Exit(64)
	}
	vkey, err := note.NewEd25519VerifierKey(os.Args[1], publicKey(os.Args[2]))
	if err != nil {
		fail(err)
	}
	logVerifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail(err)
	}
	verifiers := []note.Verifier{logVerifier}
	for _, w := range os.Args[4:] {
		parts := strings.SplitN(w, "=", 2)
		if len(parts) != 2 {
			fmt.Fprintln(os.Stderr, "opennote: a witness is NAME=PUBKEY_HEX")
			os.Exit(64)
		}
		verifiers = append(verifiers, newCosignatureVerifier(parts[0], publicKey(parts[1])))
	}
	msg, err := os.ReadFile(os.Args[3])
	if err != nil {
		fail(err)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		fail(err)
	}
	verified := map[string]bool{}
	fmt.Print(n.Text)
	for _, s := range n.Sigs {
		fmt.Printf("verified %s %08x\n", s.Name, s.Hash)
		verified[s.Name] = true
	}
	for _, v := range verifiers {
		if !verified[v.Name()] {
			fail("no valid signature by " + v.Name())
		}
	}
	fmt.Printf("vkey %s\n", vkey)
}
