package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
	"github.com/ppml/ppml/launcher"
)

// kmsEnv is a real key service on 127.0.0.1 over TLS (package kmstest)
// that trusts this machine's simulated TEE (a fresh platform key in a temp
// dir, measuring this test binary).
type kmsEnv struct {
	url, fp, host string
	port          int
	admin         *client.Client
	simDir        string
	measure       [48]byte
}

func startKMS(t *testing.T) *kmsEnv {
	t.Helper()
	simTEE, err := kmstest.NewSim(filepath.Join(t.TempDir(), "sim"), "")
	if err != nil {
		t.Fatal(err)
	}
	s := kmstest.New(t, kmstest.Options{Sim: simTEE})
	return &kmsEnv{url: s.URL, fp: s.Fingerprint, host: s.Host, port: s.Port, admin: s.Admin, simDir: simTEE.Dir, measure: simTEE.Measurement}
}

func (e *kmsEnv) client(t *testing.T, token string) *client.Client {
	c, err := client.New(e.url, token, client.Options{Fingerprint: e.fp})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *kmsEnv) party(t *testing.T, name, role string) *client.Client {
	ctx := context.Background()
	if _, err := e.admin.CreateTenant(ctx, name, role); err != nil {
		t.Fatal(err)
	}
	tok, err := e.admin.CreateToken(ctx, name, "test")
	if err != nil {
		t.Fatal(err)
	}
	return e.client(t, tok.Token)
}

// TestRunOverKeyService: an owner's kms:// key whose policy pins the
// simulated TEE's measurement (this test binary) and the job digest; the
// launcher attests, gets the keys in one release, runs the program, and
// writes the output. The same job changed by one byte is denied, the
// denial names the key and the rule, nothing runs, and the audit log
// records the denial.
func TestRunOverKeyService(t *testing.T) {
	needPython(t)
	k := startKMS(t)
	ctx := context.Background()
	owner := k.party(t, "hospital", api.RoleOwner)
	runner := k.party(t, "worker1", api.RoleRunner)
	if _, err := owner.CreateKey(ctx, "hospital/people"); err != nil {
		t.Fatal(err)
	}

	e := newJobEnv(t)
	ref := envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: k.host, Port: k.port, Name: "hospital/people"}
	// Replace the locally encrypted inputs with key-service ones.
	ek := &client.EnvelopeKey{Client: owner, Ref: ref}
	os.Remove(filepath.Join(e.dir, "people.txt.ppml"))
	encryptTo(t, filepath.Join(e.dir, "people.txt.ppml"), ek, []byte("alice\nbob\n"+e.markers[0]+"\n"))
	for _, p := range []string{"parts/a.csv.ppml", "parts/sub/b.csv.ppml"} {
		os.Remove(filepath.Join(e.dir, p))
	}
	encryptTo(t, filepath.Join(e.dir, "parts/a.csv.ppml"), ek, []byte("x\n1\n"+e.markers[1]+"\n"))
	encryptTo(t, filepath.Join(e.dir, "parts/sub/b.csv.ppml"), ek, []byte("x\n2\n"+e.markers[2]+"\n"))

	sentinel := filepath.Join(e.dir, "ran")
	prog := helloProgram + "\nopen(os.environ[\"SENTINEL\"], \"w\").write(\"ran\")"
	extra := "  env: [SENTINEL=" + sentinel + "]\n"
	mf := e.manifest(t, "hello", prog, extra)
	m, err := job.Load(mf, launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	d := m.Digest()
	pol := fmt.Sprintf("version: 1\nplatforms:\n  sim:\n    measurements: [%x]\njobs: [%x]\n", k.measure[:], d[:])
	if _, err := owner.SetPolicy(ctx, "hospital/people", []byte(pol)); err != nil {
		t.Fatal(err)
	}
	local, _ := launcher.NewLocalKeys()
	keys := &launcher.KMSKeys{Client: runner, Server: k.url, Attester: &sim.Attester{Dir: k.simDir}, Local: local}
	var stdout bytes.Buffer
	res, err := runJob(ctx, mf, launcher.Config{Keys: keys, Stdout: &stdout})
	if err != nil {
		t.Fatalf("allowed job: %v", err)
	}
	if keys.Token == "" || res.Digest != m.DigestString() {
		t.Fatalf("no attestation token / digest %s", res.Digest)
	}
	got := decryptFrom(t, filepath.Join(e.outDir, "greeting.txt.ppml"), e.key)
	if want := "hello alice\nhello bob\nhello " + e.markers[0] + "\n"; string(got) != want {
		t.Fatalf("greeting %q", got)
	}
	e.scan(t)
	for _, f := range []string{sentinel, filepath.Join(e.outDir, "greeting.txt.ppml"), filepath.Join(e.outDir, "stats.json.ppml")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}

	// One byte changes.
	e.manifest(t, "hello", strings.Replace(prog, "hello %s", "hellp %s", 1), extra)
	_, err = runJob(ctx, mf, launcher.Config{Keys: keys})
	var de *launcher.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("changed job: want a denial, got %v", err)
	}
	if !strings.Contains(err.Error(), "hospital/people") || !strings.Contains(err.Error(), "rule job_digest (policy field jobs)") || de.Denials[0].Field != "jobs" {
		t.Fatalf("denial does not name the key, the rule and the policy field: %v", err)
	}
	if _, err := os.Stat(sentinel); err == nil {
		t.Fatal("the program ran although its keys were denied")
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 0 {
		t.Fatalf("outputs written: %v", ents)
	}
	entries, err := owner.AuditList(ctx, "hospital/people", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, en := range entries {
		types = append(types, string(en.Type))
	}
	if n := strings.Count(strings.Join(types, " "), "denial"); n == 0 {
		t.Fatalf("audit trail has no denial: %v", types)
	}
	e.scan(t)
}

// An unreachable key service fails fast and names the address tried.
func TestUnreachableKeyService(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.New("https://"+addr, "tok", client.Options{Fingerprint: strings.Repeat("00", 32)})
	if err != nil {
		t.Fatal(err)
	}
	e := newJobEnv(t)
	ek := &launcher.KMSKeys{Client: c, Server: "https://" + addr, Attester: &sim.Attester{Dir: t.TempDir()}}
	// A kms:// input: rewrite people with a header naming the dead service.
	mf := filepath.Join(e.dir, "kms.yaml")
	ref := envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: "127.0.0.1", Port: 1, Name: "k"}
	kw := fixedWrapper{ref: ref}
	encryptTo(t, filepath.Join(e.dir, "remote.ppml"), kw, []byte("secret"))
	writeFile(t, mf, "name: x\nengine: exec\ninputs:\n  r: remote.ppml\nparameters:\n  command: [true]\n")
	t0 := time.Now()
	_, err = runJob(context.Background(), mf, launcher.Config{Keys: ek})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("unreachable service: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

// fixedWrapper writes envelopes whose header names ref, with a random
// wrapped key (for tests that never unwrap).
type fixedWrapper struct{ ref envelope.KeyRef }

func (f fixedWrapper) NewDataKey(aad []byte) ([]byte, []byte, envelope.KeyRef, error) {
	dk := make([]byte, envelope.DataKeySize)
	return dk, bytes.Repeat([]byte{7}, 60), f.ref, nil
}

// The examples run over a real key service too: inputs under a kms:// key
// whose policy pins the simulated TEE and the example's job digest.
func TestExamplesOverKeyService(t *testing.T) {
	needPython(t)
	k := startKMS(t)
	ctx := context.Background()
	owner := k.party(t, "lab", api.RoleOwner)
	runner := k.party(t, "worker", api.RoleRunner)
	for _, ex := range []struct{ name, data, out, want string }{
		{"python-hello", "names.txt", "greeting.txt.ppml", "Hello World, Ada!\nHello World, Grace!\nHello World, Alan!\n"},
		{"python-numpy", "matrix.csv", "stats.json.ppml", `{"max": 1498, "shape": [100, 100], "sum": 7249, "trace": 140025}` + "\n"},
	} {
		t.Run(ex.name, func(t *testing.T) {
			if ex.name == "python-numpy" && exec.Command("/usr/bin/python3", "-c", "import numpy").Run() != nil {
				t.Skip("needs python3-numpy")
			}
			dir, je := copyExample(t, ex.name, ex.data)
			keyName := "lab/" + strings.ReplaceAll(ex.name, "-", "_")
			if _, err := owner.CreateKey(ctx, keyName); err != nil {
				t.Fatal(err)
			}
			plain, err := os.ReadFile(filepath.Join("..", "examples", ex.name, ex.data))
			if err != nil {
				t.Fatal(err)
			}
			ref := envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: k.host, Port: k.port, Name: keyName}
			os.Remove(filepath.Join(dir, ex.data+".ppml"))
			encryptTo(t, filepath.Join(dir, ex.data+".ppml"), &client.EnvelopeKey{Client: owner, Ref: ref}, plain)
			m, err := job.Load(filepath.Join(dir, "job.yaml"), launcher.Specs())
			if err != nil {
				t.Fatal(err)
			}
			d := m.Digest()
			pol := fmt.Sprintf("version: 1\nplatforms:\n  sim:\n    measurements: [%x]\njobs: [%x]\n", k.measure[:], d[:])
			if _, err := owner.SetPolicy(ctx, keyName, []byte(pol)); err != nil {
				t.Fatal(err)
			}
			keys := &launcher.KMSKeys{Client: runner, Server: k.url, Attester: &sim.Attester{Dir: k.simDir}, Local: &launcher.LocalKeys{}}
			if _, err := runJob(ctx, filepath.Join(dir, "job.yaml"), launcher.Config{Keys: keys, Stdout: io.Discard}); err != nil {
				t.Fatal(err)
			}
			if got := decryptFrom(t, filepath.Join(je.outDir, ex.out), je.key); string(got) != ex.want {
				t.Fatalf("output %q", got)
			}
		})
	}
}
