// opennote opens a checkpoint note with Go's own golang.org/x/mod/sumdb/note, an
// implementation of c2sp.org/signed-note that nobody on this project wrote, and prints what it
// verified: the note's text, then one line per verified signature ("verified NAME HASH").
//
//	go run opennote.go ORIGIN PUBKEY_HEX NOTE_FILE
//
// Exits 1, with Go's error, when the note does not open under the key named ORIGIN.
// Built offline from Debian's golang-golang-x-mod-dev: GOPATH=/usr/share/gocode GO111MODULE=off.
package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: opennote ORIGIN PUBKEY_HEX NOTE_FILE")
		os.Exit(64)
	}
	pub, err := hex.DecodeString(os.Args[2])
	if err != nil || len(pub) != ed25519.PublicKeySize {
		fmt.Fprintln(os.Stderr, "opennote: the public key is 64 hex digits")
		os.Exit(64)
	}
	vkey, err := note.NewEd25519VerifierKey(os.Args[1], ed25519.PublicKey(pub))
	if err != nil {
		fmt.Fprintln(os.Stderr, "opennote:", err)
		os.Exit(1)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "opennote:", err)
		os.Exit(1)
	}
	msg, err := os.ReadFile(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "opennote:", err)
		os.Exit(1)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fmt.Fprintln(os.Stderr, "opennote:", err)
		os.Exit(1)
	}
	fmt.Print(n.Text)
	for _, s := range n.Sigs {
		fmt.Printf("verified %s %08x\n", s.Name, s.Hash)
	}
	fmt.Printf("vkey %s\n", vkey)
}
