package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/exec"
	"github.com/ppml/ppml/launcher"
)

// resources.memory reaches the program: ten times the limit fails and
// leaves no output, like any failing program; within the limit it runs.
func TestMemoryLimitEnforced(t *testing.T) {
	needPython(t)
	e := newJobEnv(t)
	prog := `import os
data = open(os.environ["PPML_INPUT_PEOPLE"]).read()
open(os.environ["PPML_OUTPUT_GREETING"], "w").write(data)
open(os.environ["PPML_OUTPUT_STATS"], "w").write("{}")
b = bytearray(int(os.environ["ALLOC_MIB"]) << 20)`
	keys, _ := launcher.NewLocalKeys(e.keyPath)
	run := func(mib string) (error, string) {
		mf := e.manifest(t, "memory", prog, "  env:\n    - ALLOC_MIB="+mib+"\nresources:\n  memory: 64MiB\n")
		var stderr bytes.Buffer
		_, err := runJob(context.Background(), mf, launcher.Config{Keys: keys, Stderr: &stderr})
		return err, stderr.String()
	}
	err, stderr := run("640")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(stderr, "MemoryError") {
		t.Fatalf("10× the limit: want MemoryError, got %v (stderr %q)", err, stderr)
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 0 {
		t.Fatalf("output directory holds %v", ents)
	}
	if err, stderr := run("16"); err != nil {
		t.Fatalf("within the limit: %v (stderr %q)", err, stderr)
	}
	got := decryptFrom(t, filepath.Join(e.outDir, "greeting.txt.ppml"), e.key)
	if !strings.Contains(string(got), e.markers[0]) {
		t.Fatalf("greeting %q", got)
	}
	e.scan(t)
}
