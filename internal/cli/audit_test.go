package cli

import (
	"github.com/ppml/ppml/internal/command"

	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/core"
	"github.com/ppml/ppml/kms/kmstest"
)

// jobDigest is the digest the key service computes for manifest, which a
// release names.
func jobDigest(t testing.TB, manifest []byte) [32]byte {
	t.Helper()
	d, err := core.JobDigest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(d)
}

// TestAuditTrailCommands: an owner saves the tree-head key and a head,
// exports its trail with the proof that it is complete and extends the
// head, and verifies it offline and live; a trail missing its newest entry
// fails; after the operator restores an old backup, verify with the saved
// head fails, naming the rollback.
func TestAuditTrailCommands(t *testing.T) {
	dir := t.TempDir()
	srv := kmstest.New(t, kmstest.Options{Config: kms.Config{DataDir: dir}})
	ctx := context.Background()
	alice, _, err := srv.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateKey(ctx, "alice/sales"); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := srv.Admin.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	tok, _ := srv.Admin.CreateToken(ctx, "alice", "cli")
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", tok.Token)
	w := t.TempDir()
	pub, head, trail := filepath.Join(w, "audit.pub"), filepath.Join(w, "head.json"), filepath.Join(w, "sales.trail")

	code, out, errs := runKMS(t, "", "audit", "public-key", "-o", pub)
	if code != 0 || !strings.Contains(out, "key_id") {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "audit", "head", "-o", head, "--public-key", pub); code != 0 || !strings.Contains(out, "signature verified") {
		t.Fatal(out, errs)
	}
	for range 3 {
		alice.RotateKey(ctx, "alice/sales")
	}
	if code, _, errs := runKMS(t, "", "audit", "export", "-o", trail, "--key", "alice/sales", "--trusted-head", head); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs = runKMS(t, "", "audit", "verify", "--file", trail, "--public-key", pub, "--key", "alice/sales", "--trusted-head", head)
	if code != 0 || !strings.Contains(out, "trail verifies, complete up to the tree head of size") || !strings.Contains(out, "key alice/sales of tenant alice: 4 entries") ||
		!strings.Contains(out, "signed at "+time.Now().UTC().Format("2006-01-02")) || !strings.Contains(out, "extends the 1 trusted tree heads") {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "audit", "verify", "--key", "alice/sales", "--trusted-head", head); code != 0 || !strings.Contains(out, "trail verifies") {
		t.Fatal(out, errs)
	}
	// Another key was asked for: the trail does not prove it.
	if code, _, errs := runKMS(t, "", "audit", "verify", "--file", trail, "--public-key", pub, "--key", "alice/other"); code != 1 || !strings.Contains(errs, "missing_trail") {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(trail)
	ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	os.WriteFile(trail, []byte(strings.Join(ls[:len(ls)-1], "\n")+"\n"), 0o600)
	if code, _, errs := runKMS(t, "", "audit", "verify", "--file", trail, "--public-key", pub, "--key", "alice/sales"); code != 1 || !strings.Contains(errs, "truncated") || !strings.Contains(errs, "newest entries about key alice/sales") {
		t.Fatalf("trail without its newest entry: %d %s", code, errs)
	}
	if code, _, errs := runKMS(t, "", "audit", "head", "-o", filepath.Join(w, "head2.json")); code != 0 {
		t.Fatal(errs)
	}

	// The operator restores the old backup (a recorded restore): the log
	// is shorter than head2.
	srv.Stop()
	bk := filepath.Join(w, "old.db")
	os.WriteFile(bk, backup.Bytes(), 0o600)
	if code, out, errs := runKMS(t, "", "server", "restore", "--data-dir", dir, "--operator", "carol", bk); code != 0 {
		t.Fatal(out, errs)
	}
	srv2 := kmstest.New(t, kmstest.Options{Config: kms.Config{DataDir: dir}})
	t.Setenv("PPML_SERVER", srv2.URL)
	t.Setenv("PPML_TOKEN", srv.AdminToken()) // the token issued after the backup is gone with it
	code, _, errs = runKMS(t, "", "audit", "verify", "--trusted-head", filepath.Join(w, "head2.json"))
	if code != 1 || !strings.Contains(errs, "inconsistent_tree_head") || !strings.Contains(errs, "rolled back") {
		t.Fatalf("rolled-back log: %d %s", code, errs)
	}
	if code, _, errs := runKMS(t, "", "audit", "verify", "--tenant", "alice", "--trusted-head", filepath.Join(w, "head2.json")); code != 1 || !strings.Contains(errs, "shorter than one you trusted") {
		t.Fatalf("rolled-back trail: %d %s", code, errs)
	}
}

// TestAuditListEscapes: text in the log (a runner's key reference, old
// entries written before references were quoted) cannot act on the
// terminal: no escape sequence, no line of its own.
func TestAuditListEscapes(t *testing.T) {
	e := audit.Entry{Index: 7, Type: audit.TypeDenial, Key: "kms://x/\x1b[2J", Reason: "a\nfake 8 release alice/k\x1b]0;t\x07 \u202etxt", Actor: "r\r", Rule: "unknown_key", Field: "jobs\x1b[0m\n"}
	line := entryLine(&e)
	if strings.ContainsAny(line, "\x1b\n\r\x07\u202e") || !strings.Contains(line, `\x1b[2J`) || !strings.Contains(line, `a\nfake`) || !strings.Contains(line, `\u202e`) || !strings.Contains(line, `field=jobs\x1b[0m\n (`) {
		t.Fatalf("%q", line)
	}
	if got := command.TermSafe("ok\nline\tx\x1b", "\n\t"); got != "ok\nline\tx\\x1b" {
		t.Fatalf("%q", got)
	}
	if got := command.TermSafe("bad \xff byte", ""); got != `bad \xff byte` {
		t.Fatalf("%q", got)
	}

	simDir := t.TempDir()
	simTEE, err := kmstest.NewSim(simDir, writeExe(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := kmstest.New(t, kmstest.Options{Sim: simTEE})
	ctx := context.Background()
	alice, _, _ := srv.Party(ctx, "alice", api.RoleOwner)
	runner, _, _ := srv.Party(ctx, "runner", api.RoleRunner)
	alice.CreateKey(ctx, "alice/k")
	alice.SetPolicy(ctx, "alice/k", simTEE.Policy(""))
	d, _ := alice.GenerateDataKey(ctx, "alice/k", []byte("a"))
	hostile := "kms://h/\x1b[2J\n     9 2026-01-01T00:00:00Z release alice/k@1 actor=owner"
	manifest := []byte("version: 1\nname: x\nengine: exec\nparameters:\n  command: [cat]\n")
	_, err = runner.Release(ctx, simTEE.Attester(), manifest, jobDigest(t, manifest),
		[]api.ReleaseKeyItem{{Ref: hostile, Wrapped: d.Wrapped, AAD: []byte("a")}}, 0)
	var se *client.StatusError
	if err == nil || !strings.Contains(err.Error(), "not a valid kms:// reference") {
		t.Fatalf("%v %v", err, se)
	}
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", srv.AdminToken())
	code, out, errs := runKMS(t, "", "audit", "list")
	if code != 0 || strings.Contains(out, "\x1b") || strings.Count(strings.TrimSuffix(out, "\n"), "\n") != strings.Count(out, " actor=")-1 || !strings.Contains(out, `\x1b[2J\n`) {
		t.Fatalf("%d %q %s", code, out, errs)
	}
}

// writeExe is a small file the simulated TEE measures (hashing the test
// binary for every piece of evidence would be slow).
func writeExe(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "exe")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	return p
}

var _ = ed25519.PublicKey(nil)

// TestAuditProveHTMLCharacters: `ppml audit prove` verifies the receipt of
// an entry holding <, > and & (a runner's hostile key reference, quoted
// into a denial's reason): the server's answer carries the entry's bytes
// exactly as hashed, not HTML-escaped.
func TestAuditProveHTMLCharacters(t *testing.T) {
	sim, err := kmstest.NewSim(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := kmstest.New(t, kmstest.Options{Sim: sim})
	ctx := context.Background()
	alice, _, err := srv.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	runner, _, err := srv.Party(ctx, "runner", api.RoleRunner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/k", sim.Policy("")); err != nil {
		t.Fatal(err)
	}
	d, err := alice.GenerateDataKey(ctx, "alice/k", nil)
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte("version: 1\nname: html\nengine: exec\ninputs:\n  in: {path: in.csv.ppml}\nparameters:\n  command: [cat]\n")
	hostile := "kms://h/<script>alert(1)</script>&amp;"
	if _, err := runner.Release(ctx, sim.Attester(), manifest, jobDigest(t, manifest), []api.ReleaseKeyItem{{Ref: hostile, Wrapped: d.Wrapped}}, 0); err == nil {
		t.Fatal("a release of an invalid reference was granted")
	}
	head, err := srv.Admin.AuditHead(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := head.Size - 1
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", srv.AdminToken())
	pub := filepath.Join(t.TempDir(), "audit.pub")
	if code, out, errs := runKMS(t, "", "audit", "public-key", "-o", pub); code != 0 {
		t.Fatal(out, errs)
	}
	code, out, errs := runKMS(t, "", "audit", "prove", fmt.Sprint(idx), "--public-key", pub, "--json")
	if code != 0 {
		t.Fatalf("prove: %d %s %s", code, out, errs)
	}
	var got struct {
		Entry    audit.Entry `json:"entry"`
		Verified bool        `json:"verified"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Verified || got.Entry.Type != audit.TypeDenial || !strings.Contains(got.Entry.Reason, "<script>alert(1)</script>&amp;") {
		t.Fatalf("proved entry %+v", got.Entry)
	}
}
