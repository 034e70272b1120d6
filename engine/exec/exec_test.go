package exec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/memfd"
	"github.com/ppml/ppml/memfd/memfdtest"
)

func memInput(t *testing.T, name, content string) *memfd.File {
	t.Helper()
	return memfdtest.Sealed(t, name, []byte(content))
}

func readAll(t *testing.T, m *memfd.File) string {
	t.Helper()
	size, err := m.Size()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.NewSectionReader(m.OSFile(), 0, size))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sh(script string, env ...execspec.EnvVar) *execspec.Params {
	return &execspec.Params{Command: []string{"sh", "-c", script}, Env: env}
}

func TestFilesEnvAndDirectories(t *testing.T) {
	in := memInput(t, "in", "one\ntwo\n")
	d1, d2 := memInput(t, "d1", "A"), memInput(t, "d2", "B")
	out, err := memfd.New("out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	t.Setenv("PASSED", "from-launcher")
	t.Setenv("NOT_PASSED", "secret")
	script := `set -e
{
  cat "$PPML_INPUT_DATA"
  cat "$PPML_INPUT_PARTS/x.csv" "$PPML_INPUT_PARTS/sub/y.csv"
  echo "$FIXED $PASSED ${NOT_PASSED:-unset} $PATH"
} > "$PPML_OUTPUT_RESULT"
case "$PPML_INPUT_DATA" in /proc/self/fd/*) ;; *) exit 9;; esac
pwd >&2`
	var stdout, stderr bytes.Buffer
	err = Run(context.Background(), Config{
		Params:  sh(script, execspec.EnvVar{Name: "FIXED", Value: "v"}, execspec.EnvVar{Name: "PASSED", Passthrough: true}),
		Inputs:  []Input{{Name: "data", File: in}, {Name: "parts", IsDir: true, Dir: []DirEntry{{Path: "x.csv", File: d1}, {Path: "sub/y.csv", File: d2}}}},
		Outputs: []Output{{Name: "result", File: out}},
		Stdout:  &stdout, Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	want := "one\ntwo\nABv from-launcher unset " + BasePATH + "\n"
	if got := readAll(t, out); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	wd := strings.TrimSpace(stderr.String())
	if !strings.Contains(wd, "ppml-exec-") {
		t.Fatalf("working directory %q is not the private one", wd)
	}
	if _, err := os.Stat(wd); err == nil {
		t.Fatalf("private directory %s survived the run", wd)
	}
}

func TestExitStatusAndSignals(t *testing.T) {
	err := Run(context.Background(), Config{Params: sh("exit 7")})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("exit 7: %v", err)
	}
	err = Run(context.Background(), Config{Params: sh("kill -KILL $$")})
	if !errors.As(err, &ee) || ee.Code != 137 || ee.Signal != "SIGKILL" {
		t.Fatalf("killed: %v", err)
	}
	if err := Run(context.Background(), Config{Params: &execspec.Params{Command: []string{"no-such-program-ppml"}}}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing program: %v", err)
	}
}

// A program that ignores SIGTERM is killed after the grace period; its
// background children go with it (the whole process group).
func TestStopEscalates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	pidFile := t.TempDir() + "/pids"
	t0 := time.Now()
	err := Run(ctx, Config{Params: sh(`trap '' TERM; sleep 60 & echo $! > ` + pidFile + `; while :; do sleep 1; done`), Grace: 500 * time.Millisecond})
	if !errors.Is(err, ErrStopped) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want stopped, got %v", err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Fatalf("stop took %v", d)
	}
	b, _ := os.ReadFile(pidFile)
	if pid := strings.TrimSpace(string(b)); pid != "" {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			st, _ := os.ReadFile("/proc/" + pid + "/stat")
			if !strings.Contains(string(st), ") Z") {
				t.Fatalf("background child %s survived: %s", pid, st)
			}
		}
	}
}
