package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ppml/ppml/kms/kmstest"
)

func runKMS(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	err := root.Execute()
	if err != nil {
		errb.WriteString(err.Error())
	}
	return exitCode(err), out.String(), errb.String()
}

// TestKeyServiceCommands drives the owner and admin commands against a real
// key service on 127.0.0.1.
func TestKeyServiceCommands(t *testing.T) {
	srv := kmstest.New(t, kmstest.Options{})
	admin := srv.AdminToken()
	addr := net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", admin)

	if code, _, errs := runKMS(t, "", "tenant", "create", "alice", "--role", "owner"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := runKMS(t, "", "tenant", "list"); code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "admin") {
		t.Fatal(out, errs)
	}
	code, out, errs := runKMS(t, "", "token", "create", "--tenant", "alice", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var tok struct{ Token, ID string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		t.Fatalf("%q %v", out, err)
	}
	t.Setenv("PPML_TOKEN", tok.Token)
	if code, _, errs := runKMS(t, "", "key", "create", "alice/sales"); code != 0 {
		t.Fatal(errs)
	}
	pol := "version: 1\nplatforms:\n  sim:\n    signers: [" + strings.Repeat("ab", 32) + "]\n"
	if code, out, errs := runKMS(t, pol, "policy", "set", "alice/sales", "-"); code != 0 || !strings.Contains(out, "abab") {
		t.Fatal(out, errs)
	}
	plain := filepath.Join(t.TempDir(), "p.txt")
	os.WriteFile(plain, []byte("owner data\n"), 0o600)
	ref := "kms://" + addr + "/alice/sales"
	if code, _, errs := runKMS(t, "", "encrypt", "--key", ref, plain); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := runKMS(t, "", "key", "rotate", "alice/sales", "--json"); code != 0 || !strings.Contains(out, `"version": 2`) {
		t.Fatal(out, errs)
	}
	back := filepath.Join(t.TempDir(), "back.txt")
	if code, _, errs := runKMS(t, "", "decrypt", "--key", ref, "-o", back, plain+".ppml"); code != 0 {
		t.Fatal(errs)
	}
	if b, _ := os.ReadFile(back); string(b) != "owner data\n" {
		t.Fatalf("decrypted %q", b)
	}
	// Without --key, decrypt uses the key the header names, with the
	// token and the server's pin given as flags.
	t.Setenv("PPML_TOKEN", "")
	t.Setenv("PPML_SERVER", "")
	t.Setenv("PPML_SERVER_FINGERPRINT", "")
	back2 := filepath.Join(t.TempDir(), "back2.txt")
	if code, _, errs := runKMS(t, "", "decrypt", "--token", tok.Token, "--server-fingerprint", srv.Fingerprint, "-o", back2, plain+".ppml"); code != 0 {
		t.Fatal(errs)
	} else if b, _ := os.ReadFile(back2); string(b) != "owner data\n" {
		t.Fatalf("decrypted %q", b)
	}
	if code, _, errs := runKMS(t, "", "decrypt", "-o", back2+"x", plain+".ppml"); code != ExitUsage || !strings.Contains(errs, "--token or PPML_TOKEN") {
		t.Fatalf("decrypt without a token: %d %s", code, errs)
	}
	if code, _, errs := runKMS(t, "", "decrypt", "--token", tok.Token, "-o", back2+"x", plain+".ppml"); code != 1 || !strings.Contains(errs, "--server-fingerprint or PPML_SERVER_FINGERPRINT") {
		t.Fatalf("decrypt without the server's pin: %d %s", code, errs)
	}
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", tok.Token)
	// A version that is not the current one is an error, not silently the current one.
	if code, _, errs := runKMS(t, "", "encrypt", "--key", ref+"@9", "-o", plain+".v9.ppml", plain); code != 1 || !strings.Contains(errs, "not version 9") {
		t.Fatalf("encrypt under @9: %d %s", code, errs)
	}
	code, out, errs = runKMS(t, "", "audit", "list", "--key", "alice/sales")
	if code != 0 || !strings.Contains(out, "key_create") || !strings.Contains(out, "policy_set") || !strings.Contains(out, "key_rotate") || !strings.Contains(out, "decrypt") {
		t.Fatalf("audit list: %s %s", out, errs)
	}
	// Owners cannot export; the admin can, and the copy verifies offline.
	if code, _, _ := runKMS(t, "", "audit", "export", "-o", filepath.Join(t.TempDir(), "x")); code != 1 {
		t.Fatal("owner exported the log")
	}
	t.Setenv("PPML_TOKEN", admin)
	exp := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, _, errs := runKMS(t, "", "audit", "export", "-o", exp); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := runKMS(t, "", "audit", "verify", "--file", exp, "--public-key", exp+".pub"); code != 0 || !strings.Contains(out, "verifies") {
		t.Fatal(out, errs)
	}
	b, _ := os.ReadFile(exp)
	os.WriteFile(exp, bytes.Replace(b, []byte(`"key_rotate"`), []byte(`"key_create"`), 1), 0o600)
	if code, out, _ := runKMS(t, "", "audit", "verify", "--file", exp, "--public-key", exp+".pub", "--json"); code != 1 || !strings.Contains(out, "modified_entry") {
		t.Fatalf("tampered export: %d %s", code, out)
	}
	if code, out, errs := runKMS(t, "", "audit", "prove", "3", "--public-key", exp+".pub"); code != 0 || !strings.Contains(out, "is in the signed tree") {
		t.Fatal(out, errs)
	}
	if code, out, errs := runKMS(t, "", "audit", "verify"); code != 0 || !strings.Contains(out, "verifies") {
		t.Fatal(out, errs)
	}
	if code, _, errs := runKMS(t, "", "token", "revoke", tok.ID); code != 0 {
		t.Fatal(errs)
	}
	t.Setenv("PPML_TOKEN", tok.Token)
	if code, _, errs := runKMS(t, "", "key", "list"); code != 1 || !strings.Contains(errs, "revoked") {
		t.Fatalf("revoked token: %d %s", code, errs)
	}
	if code, _, _ := runKMS(t, "", "key", "create"); code != ExitUsage {
		t.Fatal("missing NAME is not a usage error")
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	t.Setenv("PPML_TOKEN", admin)
	if code, _, errs := runKMS(t, "", "server", "backup", "-o", backup); code != 0 {
		t.Fatal(errs)
	}
}

// TestKMSRecipientKey: an owner creates a recipient key at the key service;
// a data provider with its own token fetches the public half and encrypts
// to it, and cannot decrypt the result; the owner decrypts it at the
// service, also after a rotation.
func TestKMSRecipientKey(t *testing.T) {
	srv := kmstest.New(t, kmstest.Options{})
	addr := net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	token := func(tenant string) string {
		t.Setenv("PPML_TOKEN", srv.AdminToken())
		if code, _, errs := runKMS(t, "", "tenant", "create", tenant, "--role", "owner"); code != 0 {
			t.Fatal(errs)
		}
		code, out, errs := runKMS(t, "", "token", "create", "--tenant", tenant, "--json")
		var tok struct{ Token string }
		if code != 0 || json.Unmarshal([]byte(out), &tok) != nil {
			t.Fatal(errs)
		}
		return tok.Token
	}
	alice, hospital := token("alice"), token("hospital")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("claims.csv"), []byte("patient,amount\n1,100\n"), 0o600)
	ref := "kms://" + addr + "/alice/intake"

	steps := []struct {
		name, token string
		args        []string
		code        int
		words       string
	}{
		{"--kem without --recipient", alice, []string{"key", "create", "alice/x", "--kem", "x25519"}, 2, "--kem goes with --recipient"},
		{"create a recipient key", alice, []string{"key", "create", "alice/intake", "--recipient"}, 0, "recipient=mlkem768x25519 version=1"},
		{"create a symmetric key", alice, []string{"key", "create", "alice/sym"}, 0, "created alice/sym"},
		{"the provider encrypts to it", hospital, []string{"encrypt", "--recipient", ref, p("claims.csv")}, 0, "key " + ref + "@1"},
		{"the provider cannot decrypt", hospital, []string{"decrypt", "--key", ref, "-o", p("x"), p("claims.csv.ppml")}, 1, "no key alice/intake"},
		{"inspect names the key", hospital, []string{"inspect", p("claims.csv.ppml")}, 0, "wrapped key:    1172 bytes"},
		{"the owner decrypts", alice, []string{"decrypt", "--key", ref, "-o", "-", p("claims.csv.ppml")}, 0, "1,100"},
		{"a symmetric key has no public half", hospital, []string{"encrypt", "--recipient", "kms://" + addr + "/alice/sym", "-o", p("y"), p("claims.csv")}, 1, "no recipient key alice/sym"},
		{"nor has a missing key", hospital, []string{"encrypt", "--recipient", "kms://" + addr + "/nobody", "-o", p("y"), p("claims.csv")}, 1, "no recipient key nobody"},
		{"rotate", alice, []string{"key", "rotate", "alice/intake"}, 0, "recipient=mlkem768x25519 version=2"},
		{"encrypt to version 2", hospital, []string{"encrypt", "--recipient", ref, "-o", p("v2.ppml"), p("claims.csv")}, 0, "key " + ref + "@2"},
		{"encrypt to version 1 by name", hospital, []string{"encrypt", "--recipient", ref + "@1", "-o", p("v1.ppml"), p("claims.csv")}, 0, "key " + ref + "@1"},
		{"no version 3", hospital, []string{"encrypt", "--recipient", ref + "@3", "-o", p("v3.ppml"), p("claims.csv")}, 1, "has no version 3"},
		{"the owner decrypts version 2", alice, []string{"decrypt", "--key", ref, "-o", "-", p("v2.ppml")}, 0, "1,100"},
		{"and version 1", alice, []string{"decrypt", "--key", ref, "-o", "-", p("v1.ppml")}, 0, "1,100"},
		{"the owner encrypts at the service too", alice, []string{"encrypt", "--key", ref, "-o", p("o.ppml"), p("claims.csv")}, 0, "key " + ref + "@2"},
		{"and decrypts it", alice, []string{"decrypt", "--key", ref, "-o", "-", p("o.ppml")}, 0, "1,100"},
	}
	for _, s := range steps {
		t.Setenv("PPML_TOKEN", s.token)
		code, out, errs := runKMS(t, "", s.args...)
		if code != s.code || !strings.Contains(out+errs, s.words) {
			t.Fatalf("%s: exit %d (want %d): %q, want %q", s.name, code, s.code, out+errs, s.words)
		}
	}
	// A modified wrapped key does not unwrap: the service says so.
	b, _ := os.ReadFile(p("v2.ppml"))
	b[63+2+len(ref)+2+2+6] ^= 1 // inside the wrapped key, after the version prefix
	os.WriteFile(p("bad.ppml"), b, 0o600)
	t.Setenv("PPML_TOKEN", alice)
	if code, out, errs := runKMS(t, "", "decrypt", "--key", ref, "-o", p("z"), p("bad.ppml")); code != 1 || !strings.Contains(out+errs, "does not unwrap under alice/intake version 2") {
		t.Fatalf("tampered wrapped key: %d %s %s", code, out, errs)
	}
}

// TestReferenceNamesTheServer: a kms:// reference says which key service
// holds its key. PPML_SERVER naming another address is refused for
// encrypt, decrypt by --key and decrypt by the header alike (and nothing
// is written); PPML_SERVER naming the same address, no PPML_SERVER, and an
// explicit --server (a second name of the same service here) work.
func TestReferenceNamesTheServer(t *testing.T) {
	srv := kmstest.New(t, kmstest.Options{})
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", srv.AdminToken())
	if code, _, errs := runKMS(t, "", "tenant", "create", "alice", "--role", "owner"); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs := runKMS(t, "", "token", "create", "--tenant", "alice", "--json")
	var tok struct{ Token string }
	if code != 0 || json.Unmarshal([]byte(out), &tok) != nil {
		t.Fatal(out, errs)
	}
	t.Setenv("PPML_TOKEN", tok.Token)
	if code, _, errs := runKMS(t, "", "key", "create", "alice/sales"); code != 0 {
		t.Fatal(errs)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "p.txt")
	os.WriteFile(plain, []byte("owner data\n"), 0o600)
	ref := "kms://" + net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)) + "/alice/sales"
	other := "https://localhost:" + strconv.Itoa(srv.Port) // the same service under another name

	t.Setenv("PPML_SERVER", other)
	for _, args := range [][]string{
		{"encrypt", "--key", ref, "-o", filepath.Join(dir, "refused.ppml"), plain},
	} {
		code, _, errs := runKMS(t, "", args...)
		if code != ExitUsage || !strings.Contains(errs, "--key "+ref+" is a key of the key service at "+srv.Host) || !strings.Contains(errs, "PPML_SERVER is "+other) {
			t.Fatalf("%v with PPML_SERVER=%s: exit %d, %s", args, other, code, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "refused.ppml")); err == nil {
		t.Fatal("a refused encrypt wrote its output")
	}
	// An explicit --server reaches the service at the other name; the
	// header still names the reference's.
	enc := filepath.Join(dir, "p.txt.ppml")
	if code, _, errs := runKMS(t, "", "encrypt", "--server", other, "--key", ref, "-o", enc, plain); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := runKMS(t, "", "inspect", enc); code != 0 || !strings.Contains(out, ref+"@1") {
		t.Fatalf("inspect: %d %s %s", code, out, errs)
	}
	for _, args := range [][]string{
		{"decrypt", "--key", ref, "-o", filepath.Join(dir, "a.txt"), enc},
		{"decrypt", "-o", filepath.Join(dir, "b.txt"), enc},
	} {
		code, _, errs := runKMS(t, "", args...)
		if code != ExitUsage || !strings.Contains(errs, "PPML_SERVER is "+other) {
			t.Fatalf("%v with PPML_SERVER=%s: exit %d, %s", args, other, code, errs)
		}
	}
	for _, env := range []string{srv.URL, srv.URL + "/", ""} {
		t.Setenv("PPML_SERVER", env)
		back := filepath.Join(t.TempDir(), "back.txt")
		if code, _, errs := runKMS(t, "", "decrypt", "-o", back, enc); code != 0 {
			t.Fatalf("decrypt with PPML_SERVER=%q: %s", env, errs)
		}
		if b, _ := os.ReadFile(back); string(b) != "owner data\n" {
			t.Fatalf("decrypted %q", b)
		}
	}
}
