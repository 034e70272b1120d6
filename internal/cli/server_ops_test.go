package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/kmstest"
)

// TestKeyServiceLifecycleCommands drives status, token TTL and renewal,
// key version disable/enable/destroy and restore against a real key
// service on 127.0.0.1.
func TestKeyServiceLifecycleCommands(t *testing.T) {
	dir := t.TempDir()
	srv := kmstest.New(t, kmstest.Options{Config: kms.Config{DataDir: dir}})
	admin := srv.AdminToken()
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", admin)

	code, out, errs := runKMS(t, "", "server", "status")
	if code != 0 || !strings.Contains(out, "Sealed         false") || !strings.Contains(out, "state version") || !strings.Contains(out, "Audit log") {
		t.Fatalf("status: %d %s %s", code, out, errs)
	}
	if code, _, errs := runKMS(t, "", "tenant", "create", "alice", "--role", "owner"); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs = runKMS(t, "", "token", "create", "--tenant", "alice", "--ttl", "2h", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var tok struct{ Token, ID, TTL string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.TTL != "2h0m0s" {
		t.Fatalf("%q %v", out, err)
	}
	if code, _, errs := runKMS(t, "", "token", "create", "--tenant", "alice", "--ttl", "tomorrow"); code == 0 || !strings.Contains(errs, `ttl "tomorrow"`) {
		t.Fatalf("bad --ttl: %d %s", code, errs)
	}
	if code, out, errs := runKMS(t, "", "token", "list"); code != 0 || !strings.Contains(out, tok.ID) || !strings.Contains(out, "expires=20") {
		t.Fatalf("token list: %s %s", out, errs)
	}
	t.Setenv("PPML_TOKEN", tok.Token)
	if code, out, errs := runKMS(t, "", "token", "renew"); code != 0 || !strings.Contains(out, "token "+tok.ID+" renewed: expires") {
		t.Fatalf("renew: %s %s", out, errs)
	}
	if code, _, errs := runKMS(t, "", "key", "create", "alice/k"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := runKMS(t, "", "key", "rotate", "alice/k"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := runKMS(t, "", "key", "disable", "alice/k", "--version", "1"); code != 0 || !strings.Contains(out, "alice/k version 1 disabled") {
		t.Fatalf("disable: %s %s", out, errs)
	}
	if code, out, _ := runKMS(t, "", "key", "list"); code != 0 || !strings.Contains(out, "(v1 disabled)") {
		t.Fatalf("key list: %s", out)
	}
	if code, _, errs := runKMS(t, "", "key", "destroy", "alice/k", "--version", "1"); code != ExitUsage || !strings.Contains(errs, "--yes") {
		t.Fatalf("destroy without --yes: %d %s", code, errs)
	}
	if code, _, errs := runKMS(t, "", "key", "disable", "alice/k"); code != ExitUsage || !strings.Contains(errs, "--version") {
		t.Fatalf("disable without --version: %d %s", code, errs)
	}
	if code, out, errs := runKMS(t, "", "key", "destroy", "alice/k", "--version", "1", "--yes"); code != 0 || !strings.Contains(out, "v1 destroyed") {
		t.Fatalf("destroy: %s %s", out, errs)
	}
	if code, _, errs := runKMS(t, "", "key", "enable", "alice/k", "--version", "1"); code != 1 || !strings.Contains(errs, "never be enabled again") {
		t.Fatalf("enable destroyed: %d %s", code, errs)
	}

	// Restore: backup, stop, restore as an operator, start on it.
	t.Setenv("PPML_TOKEN", admin)
	backup := filepath.Join(t.TempDir(), "b.db")
	if code, _, errs := runKMS(t, "", "server", "backup", "-o", backup); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := runKMS(t, "", "server", "restore", "--data-dir", dir, "--operator", "carol", backup); code != 1 || !strings.Contains(errs, "stop the key service first") {
		t.Fatalf("restore under a running server: %d %s", code, errs)
	}
	srv.Stop()
	code, out, errs = runKMS(t, "", "server", "restore", "--data-dir", dir, "--operator", "carol", backup)
	if code != 0 || !strings.Contains(out, "by operator carol") || !strings.Contains(out, "before-restore") {
		t.Fatalf("restore: %d %s %s", code, out, errs)
	}
	if code, _, errs := runKMS(t, "", "server", "restore", backup); code != ExitUsage || !strings.Contains(errs, "--data-dir") {
		t.Fatalf("restore without --data-dir: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, kms.DBFile)); err != nil {
		t.Fatal(err)
	}
	srv2 := kmstest.New(t, kmstest.Options{Config: kms.Config{DataDir: dir}})
	t.Setenv("PPML_SERVER", srv2.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv2.Fingerprint)
	if code, out, errs := runKMS(t, "", "audit", "list", "--limit", "1000"); code != 0 || !strings.Contains(out, "restore") || !strings.Contains(out, "operator:carol") {
		t.Fatalf("audit list after restore: %s %s", out, errs)
	}
}

// TestUnsealFromStandardInput: shares piped in, one per line (the prompt
// that hides them needs a terminal).
func TestUnsealFromStandardInput(t *testing.T) {
	dir := t.TempDir()
	cfg := kms.Config{DataDir: dir, Seal: "shamir", Shares: 3, Threshold: 2}
	srv := kmstest.New(t, kmstest.Options{Config: cfg})
	shares := regexp.MustCompile(`ppml-share-1:[0-9a-f]+`).FindAllString(srv.Output(), -1)
	srv.Stop()
	srv = kmstest.New(t, kmstest.Options{Config: cfg})
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	if code, out, errs := runKMS(t, shares[0]+"\n", "server", "unseal"); code != 0 || !strings.Contains(out, "still sealed: 1 of 2 shares given") {
		t.Fatalf("first share: %s %s", out, errs)
	}
	if code, out, errs := runKMS(t, "", "server", "status"); code != 0 || !strings.Contains(out, "Unseal shares  1 of 2 given (the split has 3)") {
		t.Fatalf("sealed status: %s %s", out, errs)
	}
	if code, out, errs := runKMS(t, "\n"+shares[2]+"\n", "server", "unseal"); code != 0 || !strings.Contains(out, "unsealed") {
		t.Fatalf("second share: %s %s", out, errs)
	}
}
