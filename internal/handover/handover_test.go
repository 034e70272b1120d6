package handover

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeExe(t *testing.T, path, script string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestEnvVar(t *testing.T) {
	if EnvVar(Runtime) != "PPML_RUN" || EnvVar(Bench) != "PPML_BENCH" {
		t.Errorf("%s %s", EnvVar(Runtime), EnvVar(Bench))
	}
}

// Find takes $PPML_RUN first, then PATH (beside the test binary there is
// no ppml-run), and names every place it looked when it finds nothing.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	pinned := filepath.Join(dir, "my-runtime")
	writeExe(t, pinned, "exit 0")
	onPath := t.TempDir()
	writeExe(t, filepath.Join(onPath, Runtime), "exit 0")

	t.Setenv("PATH", onPath)
	t.Setenv("PPML_RUN", pinned)
	if p, err := Find(Runtime); err != nil || p != pinned {
		t.Fatalf("with PPML_RUN: %q %v", p, err)
	}
	t.Setenv("PPML_RUN", "")
	if p, err := Find(Runtime); err != nil || p != filepath.Join(onPath, Runtime) {
		t.Fatalf("from PATH: %q %v", p, err)
	}

	// $PPML_RUN names that file and no other: a missing one is an error,
	// not a reason to look further.
	t.Setenv("PPML_RUN", filepath.Join(dir, "nope"))
	_, err := Find(Runtime)
	var nf *NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "$PPML_RUN="+filepath.Join(dir, "nope")+": no such file") {
		t.Fatalf("missing PPML_RUN: %v", err)
	}
	notExe := filepath.Join(dir, "data")
	os.WriteFile(notExe, []byte("x"), 0o644)
	t.Setenv("PPML_RUN", notExe)
	if _, err := Find(Runtime); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Fatalf("non-executable PPML_RUN: %v", err)
	}

	t.Setenv("PPML_RUN", "")
	t.Setenv("PATH", t.TempDir())
	_, err = Find(Runtime)
	self, _ := os.Executable()
	for _, want := range []string{"ppml-run not found", "in $PPML_RUN (not set)", "beside " + filepath.Dir(self), "on $PATH=", "make build", "PPML_RUN=/path/to/ppml-run"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("not found: %v, want %q", err, want)
		}
	}
}

// TestFindBeside: a binary beside the executable (symbolic links resolved)
// comes before PATH. The test binary is copied next to a fake runtime and
// started through a symbolic link from elsewhere.
func TestFindBeside(t *testing.T) {
	if os.Getenv("HANDOVER_FIND_CHILD") == "1" {
		p, err := Find(Runtime)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			os.Exit(0)
		}
		os.Stdout.WriteString(p)
		os.Exit(0)
	}
	real := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(real, "ppml")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	writeExe(t, filepath.Join(real, Runtime), "exit 0")
	link := filepath.Join(t.TempDir(), "ppml")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	onPath := t.TempDir()
	writeExe(t, filepath.Join(onPath, Runtime), "exit 0")
	cmd := exec.Command(link, "-test.run=^TestFindBeside$")
	cmd.Env = append(os.Environ(), "HANDOVER_FIND_CHILD=1", "PPML_RUN=", "PATH="+onPath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != filepath.Join(real, Runtime) {
		t.Fatalf("found %q, want the runtime beside the resolved executable %s", out, filepath.Join(real, Runtime))
	}
}

// Exec replaces the process: the other binary gets the arguments and the
// environment, and its exit status is the caller's.
func TestExec(t *testing.T) {
	if os.Getenv("HANDOVER_EXEC_CHILD") == "1" {
		err := Exec(Runtime, []string{"run", "--manifest", "a b.yaml"})
		os.Stderr.WriteString("Exec returned: " + err.Error())
		os.Exit(99)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-run")
	writeExe(t, fake, `printf '%s|' "$@"; printf '%s' "$PPML_MARK"; exit 7`)
	cmd := exec.Command(os.Args[0], "-test.run=^TestExec$")
	cmd.Env = append(os.Environ(), "HANDOVER_EXEC_CHILD=1", "PPML_RUN="+fake, "PPML_MARK=kept")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exit: %v (stderr %s)", err, ee.Stderr)
	}
	if string(out) != "run|--manifest|a b.yaml|kept" {
		t.Fatalf("the other binary saw %q", out)
	}

	cmd = exec.Command(os.Args[0], "-test.run=^TestExec$")
	cmd.Env = append(os.Environ(), "HANDOVER_EXEC_CHILD=1", "PPML_RUN="+filepath.Join(dir, "missing"))
	_, err = cmd.Output()
	if !errors.As(err, &ee) || ee.ExitCode() != 99 || !strings.Contains(string(ee.Stderr), "ppml-run not found") {
		t.Fatalf("missing runtime: %v %s", err, ee.Stderr)
	}
}
