package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/job"
)

// runCLI runs the command tree in-process and returns stdout and the exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(args)
	code := exitCode(root.Execute())
	return out.String(), code
}

func TestJobCommands(t *testing.T) {
	golden := filepath.Join("..", "..", "job", "testdata", "golden.yaml")
	want, err := os.ReadFile(filepath.Join("..", "..", "job", "testdata", "golden.digest"))
	if err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "job", "digest", "--manifest", golden)
	if code != ExitOK || out != string(want) {
		t.Fatalf("digest: code %d out %q want %q", code, out, want)
	}
	out, code = runCLI(t, "job", "digest", "--manifest", golden, "--canonical")
	if sum := sha256.Sum256([]byte(out)); code != ExitOK || job.FormatDigest(sum)+"\n" != string(want) {
		t.Fatalf("canonical: code %d", code)
	}
	out, code = runCLI(t, "job", "digest", "--manifest", golden, "--json")
	var res struct{ Digest, Name string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitOK || res.Digest+"\n" != string(want) || res.Name != "golden-exec" {
		t.Fatalf("digest --json: code %d %v %q", code, err, out)
	}

	dir := t.TempDir()
	good := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(filepath.Join(dir, "in.ppml"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("name: j\nengine: exec\ninputs: {a: in.ppml}\noutputs: {o: {path: out.ppml, key: \"file:k\"}}\nparameters: {command: [cat]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "job", "validate", "--manifest", good); code != ExitOK || !strings.Contains(out, "valid exec job \"j\", digest sha256:") {
		t.Fatalf("validate good: %d %q", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: j\nengine: exec\ninputs: {a: missing.ppml}\nparameters: {command: []}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, code := runCLI(t, "job", "validate", "--manifest", bad); code != ExitFailure {
		t.Fatalf("validate bad: exit %d", code)
	}
	out, code = runCLI(t, "job", "validate", "--manifest", bad, "--json")
	if code != ExitFailure || !strings.Contains(out, `"field": "parameters.command"`) || !strings.Contains(out, `"line": 4`) {
		t.Fatalf("validate --json bad: %d %s", code, out)
	}
	// Missing inputs are found by validate but do not stop digest.
	if err := os.WriteFile(bad, []byte("name: j\nengine: exec\ninputs: {a: missing.ppml}\nparameters: {command: [cat]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, "job", "validate", "--manifest", bad, "--json")
	if code != ExitFailure || !strings.Contains(out, "does not exist") {
		t.Fatalf("validate missing input: %d %s", code, out)
	}
	if _, code := runCLI(t, "job", "digest", "--manifest", bad); code != ExitOK {
		t.Fatalf("digest with missing input: exit %d", code)
	}
	if _, code := runCLI(t, "job", "digest"); code != ExitUsage {
		t.Fatalf("digest without --manifest: exit %d", code)
	}
	if _, code := runCLI(t, "job", "digest", "--manifest", good, "--json", "--canonical"); code != ExitUsage {
		t.Fatalf("conflicting flags: exit %d", code)
	}
	if _, code := runCLI(t, "job", "validate", "--manifest", filepath.Join(dir, "nope.yaml")); code != ExitFailure {
		t.Fatalf("missing manifest: exit %d", code)
	}
}
