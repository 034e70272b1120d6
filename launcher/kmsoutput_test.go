package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/engine/exec"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/launcher"
)

// kmsOutputJob writes a manifest whose input and both outputs are under
// key-service keys, and returns its path, digest and the run's sentinel.
func kmsOutputJob(t *testing.T, dir string, in, out envelope.KeyRef) (string, [32]byte, string) {
	t.Helper()
	sentinel := filepath.Join(dir, "ran")
	mf := filepath.Join(dir, "job.yaml")
	writeFile(t, mf, fmt.Sprintf(`name: shout
engine: exec
inputs:
  data: {path: data.txt.ppml, key: %s}
outputs:
  upper: {path: out/upper.txt.ppml, key: %s}
  count: {path: out/count.txt.ppml, key: %s}
parameters:
  command:
    - /bin/sh
    - -c
    - 'touch %s && tr a-z A-Z < "$PPML_INPUT_DATA" > "$PPML_OUTPUT_UPPER" && wc -l < "$PPML_INPUT_DATA" > "$PPML_OUTPUT_COUNT"'
`, in, out, out, sentinel))
	m, err := job.Load(mf, launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	return mf, m.Digest(), sentinel
}

// TestRunKMSOutputs: a job's input and outputs are all under the data
// owner's key-service keys. One attested release gives the launcher the
// input key and a fresh data key per output, each wrapped under the output
// key with the output envelope's header; afterwards the owner decrypts the
// outputs through the service (what ppml decrypt does) and the audit trail
// shows an output_key entry per output with the TEE's measurement and the
// job. When the output key's policy does not allow the job, the whole
// release is refused: nothing runs and nothing is written, although the
// input key alone would have been released.
func TestRunKMSOutputs(t *testing.T) {
	k := startKMS(t)
	ctx := context.Background()
	owner := k.party(t, "lab", api.RoleOwner)
	runner := k.party(t, "worker", api.RoleRunner)
	for _, name := range []string{"lab/in", "lab/results"} {
		if _, err := owner.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// Rotate the output key: new wraps must use the newest version.
	if _, err := owner.RotateKey(ctx, "lab/results"); err != nil {
		t.Fatal(err)
	}
	inRef := envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: k.host, Port: k.port, Name: "lab/in"}
	outRef := envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: k.host, Port: k.port, Name: "lab/results"}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "out"), 0o755)
	mk := marker(t)
	plain := "alpha\nbeta " + mk + "\ngamma\n"
	encryptTo(t, filepath.Join(dir, "data.txt.ppml"), &client.EnvelopeKey{Client: owner, Ref: inRef}, []byte(plain))
	mf, digest, sentinel := kmsOutputJob(t, dir, inRef, outRef)
	allow := fmt.Sprintf("version: 1\nplatforms:\n  sim:\n    measurements: [%x]\njobs: [%x]\n", k.measure[:], digest[:])
	for _, name := range []string{"lab/in", "lab/results"} {
		if _, err := owner.SetPolicy(ctx, name, []byte(allow)); err != nil {
			t.Fatal(err)
		}
	}
	keys := &launcher.KMSKeys{Client: runner, Server: k.url, Attester: &sim.Attester{Dir: k.simDir}}
	start := time.Now()
	if _, err := runJob(ctx, mf, launcher.Config{Keys: keys}); err != nil {
		t.Fatalf("run: %v", err)
	}
	if keys.Token == "" {
		t.Fatal("no attestation token")
	}

	// The owner decrypts with the service, as ppml decrypt does.
	ek := &client.EnvelopeKey{Client: owner, Ref: outRef}
	want := map[string]string{"upper.txt.ppml": strings.ToUpper(plain), "count.txt.ppml": "3\n"}
	for name, w := range want {
		path := filepath.Join(dir, "out", name)
		var got bytes.Buffer
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := envelope.Decrypt(&got, f, ek)
		f.Close()
		if err != nil {
			t.Fatalf("owner decrypts %s: %v", name, err)
		}
		if strings.TrimSpace(got.String()) != strings.TrimSpace(w) {
			t.Fatalf("%s: got %q, want %q", name, got.String(), w)
		}
		if h.KeyRef.Scheme != envelope.SchemeKMS || h.KeyRef.Name != "lab/results" || h.KeyRef.Version != 2 {
			t.Fatalf("%s: header names %s, want lab.results version 2", name, h.KeyRef)
		}
		// The length is recorded although the data key was wrapped (in
		// the release) before the job ran: as ppml inspect shows it.
		if !h.LengthAfterWrap() || h.PlaintextLength != uint64(got.Len()) {
			t.Fatalf("%s: header records length %d (after the wrap: %v), the plaintext is %d bytes", name, h.PlaintextLength, h.LengthAfterWrap(), got.Len())
		}
		f, _ = os.Open(path)
		in, err := envelope.Inspect(f, -1)
		f.Close()
		if err != nil || in.PlaintextBytes == nil || *in.PlaintextBytes != uint64(got.Len()) || in.Layout != "ok" {
			t.Fatalf("%s: inspect %+v, %v", name, in, err)
		}
		// The runner, which got the data key inside the TEE, cannot unwrap
		// the header afterwards: only the owner can.
		f, _ = os.Open(path)
		_, err = envelope.Decrypt(&bytes.Buffer{}, f, &client.EnvelopeKey{Client: runner, Ref: outRef})
		f.Close()
		if err == nil {
			t.Fatalf("the runner decrypted %s", name)
		}
	}
	entries, err := owner.AuditList(ctx, "lab/results", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var outs int
	for _, en := range entries {
		if en.Type == audit.TypeOutputKey {
			outs++
			if en.Decision != "allow" || !bytes.Equal(en.JobDigest, digest[:]) || !bytes.Equal(en.Measurement, k.measure[:]) || en.KeyVersion != 2 || en.Platform != "sim" {
				t.Fatalf("output_key entry %+v", en)
			}
		}
	}
	if outs != 2 {
		t.Fatalf("%d output_key audit entries, want 2", outs)
	}
	scanForMarkers(t, start, []string{dir}, mk)

	// The output key's owner allows another job only.
	for _, f := range []string{sentinel, filepath.Join(dir, "out", "upper.txt.ppml"), filepath.Join(dir, "out", "count.txt.ppml")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	other := fmt.Sprintf("version: 1\nplatforms:\n  sim:\n    measurements: [%x]\njobs: [%s]\n", k.measure[:], strings.Repeat("ab", 32))
	if _, err := owner.SetPolicy(ctx, "lab/results", []byte(other)); err != nil {
		t.Fatal(err)
	}
	_, err = runJob(ctx, mf, launcher.Config{Keys: keys})
	var de *launcher.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("output key not allowed: want a denial, got %v", err)
	}
	if len(de.Denials) != 2 || !strings.Contains(err.Error(), "lab/results") || !strings.Contains(err.Error(), "rule job_digest") || !strings.Contains(err.Error(), "output key:") {
		t.Fatalf("denial does not name the output key and the rule: %v", err)
	}
	if _, err := os.Stat(sentinel); err == nil {
		t.Fatal("the program ran although its output key was denied")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
		t.Fatalf("outputs written: %v", ents)
	}
	entries, err = owner.AuditList(ctx, "lab/in", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var releases int
	for _, en := range entries {
		if en.Type == "release" {
			releases++
		}
	}
	if releases != 1 { // the first run's only
		t.Fatalf("the input key has %d release entries, want 1: it was released although the output key was denied", releases)
	}
	entries, err = owner.AuditList(ctx, "lab/results", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := entries[len(entries)-1]; last.Type != "denial" || last.Rule != "job_digest" || !strings.HasPrefix(last.Reason, "output key: ") {
		t.Fatalf("last audit entry of the output key: %+v", last)
	}

	// A program that fails after the output keys were released leaves no
	// output: the headers drafted before the release are never written.
	for _, name := range []string{"lab/in", "lab/results"} {
		if _, err := owner.SetPolicy(ctx, name, []byte(fmt.Sprintf("version: 1\nplatforms:\n  sim:\n    measurements: [%x]\n", k.measure[:]))); err != nil {
			t.Fatal(err)
		}
	}
	failing := filepath.Join(dir, "fail.yaml")
	writeFile(t, failing, fmt.Sprintf("name: fail\nengine: exec\ninputs:\n  data: {path: data.txt.ppml, key: %s}\noutputs:\n  upper: {path: out/upper.txt.ppml, key: %s}\nparameters:\n  command: [/bin/sh, -c, 'cat \"$PPML_INPUT_DATA\" > \"$PPML_OUTPUT_UPPER\"; exit 3']\n", inRef, outRef))
	start = time.Now()
	_, err = runJob(ctx, failing, launcher.Config{Keys: keys})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("failing program: want exit status 3, got %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
		t.Fatalf("a failed job wrote outputs: %v", ents)
	}
	scanForMarkers(t, start, []string{dir}, mk)
	entries, err = owner.AuditList(ctx, "lab/results", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := entries[len(entries)-1]; last.Type != audit.TypeOutputKey {
		t.Fatalf("the failing job's output key was not released (so the test proves nothing): %+v", last)
	}
}
