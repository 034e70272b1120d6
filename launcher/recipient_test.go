package launcher_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
)

// TestRecipientKeyFile: with local key files (development, simulated TEE),
// an input a data provider encrypted to the owner's public key opens with
// the owner's recipient private key file, a file: pin of that file matches
// it, and an output under it is encrypted to its public half.
func TestRecipientKeyFile(t *testing.T) {
	dir := t.TempDir()
	id, err := keyfile.GenerateIdentity(filepath.Join(dir, "owner.key"), envelope.KEMX25519, false)
	if err != nil {
		t.Fatal(err)
	}
	encryptTo(t, filepath.Join(dir, "in.txt.ppml"), id.Recipient(), []byte("hello\n"))
	mf := filepath.Join(dir, "job.yaml")
	writeFile(t, mf, `name: recipient
engine: exec
inputs: {in: {path: in.txt.ppml, key: "file:owner.key"}}
outputs: {o: {path: o.txt.ppml, key: "file:owner.key"}}
parameters:
  command: [/bin/sh, -c, 'tr a-z A-Z < "$PPML_INPUT_IN" > "$PPML_OUTPUT_O"']
`)
	local, err := launcher.NewLocalKeys()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runJob(context.Background(), mf, launcher.Config{Keys: local, Stderr: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o.txt.ppml")
	if got := string(decryptFrom(t, out, id)); got != "HELLO\n" {
		t.Fatalf("output %q", got)
	}
	f, _ := os.Open(out)
	h, err := envelope.ReadHeader(f)
	f.Close()
	if err != nil || h.KeyRef != id.Ref() {
		t.Fatalf("output header: %v %v", h, err)
	}
	// Without the private key file the input's key is named.
	writeFile(t, mf, "name: x\nengine: exec\ninputs:\n  in: in.txt.ppml\nparameters:\n  command: [true]\n")
	empty, _ := launcher.NewLocalKeys()
	if _, err := runJob(context.Background(), mf, launcher.Config{Keys: empty}); err == nil || !strings.Contains(err.Error(), "needs recipient key "+id.ID()+" (X25519): give its key file with --key") {
		t.Fatalf("missing recipient key: %v", err)
	}
}
