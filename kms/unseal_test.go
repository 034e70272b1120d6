package kms

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ppml/ppml/seal"
	"github.com/ppml/ppml/seal/shamir"
)

// TestUnsealVersion1SharesBounded: with a seal.json written before share
// commitments, a sealed server cannot tell a forged share from a genuine
// one, so junk shares of made-up splits sent to the unauthenticated unseal
// route are kept apart from the operators' — in a bounded number of
// groups, not one per split forever. Once unsealed, seal.json is upgraded
// and forged shares are refused from then on.
func TestUnsealVersion1SharesBounded(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	cfg := Config{DataDir: dir, Seal: "shamir", Shares: 5, Threshold: 3, Out: &out, Logger: slog.New(slog.DiscardHandler)}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	shares := regexp.MustCompile(`ppml-share-1:[0-9a-f]+`).FindAllString(out.String(), -1)
	if len(shares) != 5 {
		t.Fatalf("shares: %q", out.String())
	}
	// seal.json as version 1 wrote it: no split id, no commitments.
	st, err := seal.LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Version, st.SplitID, st.ShareCommitments = 1, "", nil
	b, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(dir, seal.StateFile), b, 0o600)

	cfg.Out = io.Discard
	s, err = New(cfg)
	if err != nil || !s.Sealed() {
		t.Fatalf("restart: sealed=%v %v", s != nil && s.Sealed(), err)
	}
	defer s.Close()
	for _, sh := range shares[:2] {
		if _, err := s.Unseal(sh); err != nil {
			t.Fatal(err)
		}
	}
	junk := make([]byte, 32)
	for i := range 2000 {
		rand.Read(junk)
		fs, err := shamir.Split(junk, 3, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unseal(fs[i%3].String()); err != nil {
			t.Fatalf("junk share %d: %v", i, err)
		}
	}
	s.mu.Lock()
	groups := len(s.shares)
	s.mu.Unlock()
	if groups > maxShareGroups {
		t.Fatalf("%d share groups kept after 2000 junk shares; want at most %d", groups, maxShareGroups)
	}
	if st, err := s.Unseal(shares[4]); err != nil || st.Sealed {
		t.Fatalf("third operator share after the junk: %+v %v", st, err)
	}
	up, err := seal.LoadState(dir)
	if err != nil || up.Version != 2 || len(up.ShareCommitments) != 5 {
		t.Fatalf("seal.json not upgraded: %+v %v", up, err)
	}
	forged, _ := shamir.Parse(shares[3])
	forged.Y[1] ^= 1
	if err := up.CheckShare(forged); err == nil {
		t.Fatal("a forged share passes the upgraded seal.json")
	}
}
