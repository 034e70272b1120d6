package kms_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/seal/shamir"
)

func TestRotation(t *testing.T) {
	e := startServer(t, t.TempDir(), kms.Config{})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	ek := &client.EnvelopeKey{Client: alice, Ref: e.ref("alice/k")}
	dir := t.TempDir()
	h1 := encrypt(t, filepath.Join(dir, "v1.ppml"), ek, []byte("under version 1"))
	k, err := alice.RotateKey(ctx, "alice/k")
	if err != nil || k.Version != 2 || len(k.Versions) != 2 {
		t.Fatalf("rotate: %+v %v", k, err)
	}
	h2 := encrypt(t, filepath.Join(dir, "v2.ppml"), ek, []byte("under version 2"))
	if h1.KeyRef.Version != 1 || h2.KeyRef.Version != 2 {
		t.Fatalf("versions in headers: %d %d", h1.KeyRef.Version, h2.KeyRef.Version)
	}
	for name, want := range map[string]string{"v1.ppml": "under version 1", "v2.ppml": "under version 2"} {
		got, err := decryptFile(t, filepath.Join(dir, name), ek)
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q %v", name, got, err)
		}
	}
	// A wrapped key moved to another file's header (other AAD) does not unwrap.
	if _, err := alice.Decrypt(ctx, "alice/k", h1.WrappedKey, h2.WrapAAD()); err == nil || !strings.Contains(err.Error(), "wrapped_key") {
		t.Fatalf("moved wrapped key: %v", err)
	}

	// An online backup, restored next to seal.json, serves the same keys.
	var buf bytes.Buffer
	if _, err := e.admin.Backup(ctx, &buf); err != nil || buf.Len() == 0 {
		t.Fatalf("backup: %d bytes, %v", buf.Len(), err)
	}
	restored := t.TempDir()
	seal, err := os.ReadFile(filepath.Join(e.dataDir, "seal.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(restored, "seal.json"), seal, 0o600)
	os.WriteFile(filepath.Join(restored, kms.DBFile), buf.Bytes(), 0o600)
	rootKey, err := os.ReadFile(filepath.Join(e.dataDir, "root.key")) // the file seal's key, kept apart from backups
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(restored, "root.key"), rootKey, 0o600)
	e.stop()
	r := startServer(t, restored, kms.Config{})
	alice = r.client(alice0Token(t, e))
	got, err := decryptFile(t, filepath.Join(dir, "v1.ppml"), &client.EnvelopeKey{Client: alice, Ref: e.ref("alice/k")})
	if err != nil || string(got) != "under version 1" {
		t.Fatalf("after restore: %q %v", got, err)
	}
}

func alice0Token(t *testing.T, e *testEnv) string { return e.tokens["alice"] }

var shareRE = regexp.MustCompile(`ppml-share-[0-9a-f:-]+[0-9a-f]`)

func TestShamirRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := kms.Config{Seal: "shamir", Shares: 5, Threshold: 3}
	e := startServer(t, dir, cfg)
	shares := shareRE.FindAllString(e.Output(), -1)
	if len(shares) != 5 || e.admin == nil {
		t.Fatalf("first start printed %d shares: %q", len(shares), e.Output())
	}
	ctx := context.Background()
	alice, aliceTok := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	e.stop()

	// Restart: sealed until K shares; K-1 leave it sealed with a clear message.
	e = startServer(t, dir, cfg)
	if !e.srv.Sealed() || strings.Contains(e.Output(), "ppml_") {
		t.Fatalf("restart: sealed=%v out=%q", e.srv.Sealed(), e.Output())
	}
	alice = e.client(aliceTok.Token)
	if _, err := alice.ListKeys(ctx); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("sealed server answered: %v", err)
	}
	anon := e.client("")
	// A share of another split (another server, or junk from anyone who can
	// reach the unauthenticated route) neither mixes with nor blocks the
	// operators' shares.
	foreign, err := shamir.Split(bytes.Repeat([]byte{1}, 32), 5, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Unseal(ctx, foreign[0].String()); err == nil || !strings.Contains(err.Error(), "belongs to another server") {
		t.Fatalf("foreign share: %v", err)
	}
	for i, sh := range shares[:2] {
		st, err := anon.Unseal(ctx, sh)
		if err != nil || !st.Sealed || st.Shares != i+1 || st.Threshold != 3 || st.SharesTotal != 5 {
			t.Fatalf("share %d: %+v %v", i+1, st, err)
		}
	}
	if _, err := anon.Unseal(ctx, shares[1]); err == nil || !strings.Contains(err.Error(), "already given") {
		t.Fatalf("duplicate share: %v", err)
	}
	// A forged share of this very split (whoever saw a share knows the
	// split id, and the check bytes are unkeyed): refused at once against
	// its commitment in seal.json, and the operators' two shares stay.
	honest, err := shamir.Parse(shares[3])
	if err != nil {
		t.Fatal(err)
	}
	honest.Y[0] ^= 0x5a
	if _, err := anon.Unseal(ctx, honest.String()); err == nil || !strings.Contains(err.Error(), "forged or damaged") {
		t.Fatalf("forged share of this split: %v", err)
	}
	if !e.srv.Sealed() {
		t.Fatal("unsealed with K-1 shares")
	}
	st, err := anon.Unseal(ctx, shares[4])
	if err != nil || st.Sealed {
		t.Fatalf("third share: %+v %v", st, err)
	}
	ks, err := alice.ListKeys(ctx)
	if err != nil || len(ks) != 1 || ks[0].Name != "alice/k" {
		t.Fatalf("after unseal: %+v %v", ks, err)
	}
	// An operator who lost the admin token gets a new one at start (after unsealing).
	e.stop()
	cfg.NewAdminToken = true
	e = startServer(t, dir, cfg)
	for _, sh := range shares[:3] {
		if _, err := e.client("").Unseal(ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	newAdmin := e.AdminToken()
	if newAdmin == "" {
		t.Fatalf("no new admin token: %q", e.Output())
	}
	if _, err := e.client(newAdmin).ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.NewAdminToken = false

	// A corrupted share is refused as such.
	e.stop()
	e = startServer(t, dir, cfg)
	bad := []byte(shares[0])
	bad[len(bad)-1] ^= 1
	if _, err := e.client("").Unseal(ctx, string(bad)); err == nil {
		t.Fatal("corrupted share accepted")
	}
	_ = bytes.Equal
}

// TestTEESealRestart runs the --seal tee wiring with a stand-in for
// Gramine's /dev/attestation/keys: the same sealing key reopens the data,
// another one (another enclave build or CPU) does not.
func TestTEESealRestart(t *testing.T) {
	keys := t.TempDir()
	os.WriteFile(filepath.Join(keys, "_sgx_mrenclave"), bytes.Repeat([]byte{7}, 16), 0o600)
	dir := t.TempDir()
	cfg := kms.Config{Seal: "tee", TEEKeyDir: keys}
	e := startServer(t, dir, cfg)
	alice, tok := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(context.Background(), "alice/k"); err != nil {
		t.Fatal(err)
	}
	e.stop()
	e = startServer(t, dir, cfg)
	if ks, err := e.client(tok.Token).ListKeys(context.Background()); err != nil || len(ks) != 1 {
		t.Fatalf("after restart: %v %v", ks, err)
	}
	e.stop()
	os.WriteFile(filepath.Join(keys, "_sgx_mrenclave"), bytes.Repeat([]byte{8}, 16), 0o600)
	if _, err := kms.New(kms.Config{DataDir: dir, Seal: "tee", TEEKeyDir: keys, Out: io.Discard}); err == nil || !strings.Contains(err.Error(), "verifier") {
		t.Fatalf("another sealing key opened the data: %v", err)
	}
	// Without seal.json the server refuses to make a new root over the data.
	os.Remove(filepath.Join(dir, "seal.json"))
	if _, err := kms.New(kms.Config{DataDir: dir, Seal: "tee", TEEKeyDir: keys, Out: io.Discard}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("missing seal.json: %v", err)
	}
}
