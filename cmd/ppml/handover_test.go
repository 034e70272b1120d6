package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/internal/buildtest"
	"github.com/ppml/ppml/keyfile"
)

// The hand-over is tested with real binaries: ppml, and a ppml-run with the
// pure-Go engines only (exec, and stream for TestRunStopDrains: quick to
// link) named by $PPML_RUN, as a user could.
var (
	ppmlBin    = buildtest.PPML()
	runtimeBin = buildtest.Runtime("ppml_no_sql", "ppml_no_ml", "ppml_no_serve", "ppml_no_dl")
)

func TestMain(m *testing.M) { os.Exit(buildtest.Main(m, ppmlBin, runtimeBin)) }

func ppml(args ...string) *exec.Cmd {
	c := exec.Command(ppmlBin.Path(), args...)
	c.Env = append(os.Environ(), "PPML_SERVER=")
	return c
}

// TestHandOver: ppml run, sql and ml become ppml-run, with the arguments,
// the exit status and the signals of the one process.
func TestHandOver(t *testing.T) {
	dir := t.TempDir()
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	envelopetest.Encrypt(t, filepath.Join(dir, "in.txt.ppml"), k.LocalKey, []byte("hello\n"), envelope.TypeBytes)
	job := func(name, script string) string {
		p := filepath.Join(dir, name+".yaml")
		m := "name: " + name + "\nengine: exec\ninputs: {in: in.txt.ppml}\noutputs: {out: {path: " + name + ".out.ppml, key: file:owner.key}}\n" +
			"parameters:\n  command: [/bin/sh, -c, '" + script + "']\n"
		if err := os.WriteFile(p, []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	var stdout, stderr bytes.Buffer
	c := ppml("run", "--manifest", job("copy", `cat "$PPML_INPUT_IN" > "$PPML_OUTPUT_OUT"`), "--key", filepath.Join(dir, "owner.key"), "--json")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil || !strings.Contains(stdout.String(), `"exit_code": 0`) {
		t.Fatalf("ppml run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if got := envelopetest.Decrypt(t, filepath.Join(dir, "copy.out.ppml"), k.LocalKey); string(got) != "hello\n" {
		t.Fatalf("output %q", got)
	}

	// The program's status is ppml's.
	c = ppml("run", "--manifest", job("five", "exit 5"), "--key", filepath.Join(dir, "owner.key"))
	var ee *exec.ExitError
	if err := c.Run(); !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Fatalf("exit 5: %v", err)
	}

	// A signal to the ppml process reaches the runtime, which is that
	// process: SIGTERM stops the job, 128+15, no output.
	pidFile := filepath.Join(dir, "pid")
	c = ppml("run", "--manifest", job("sleep", `echo $$ > `+pidFile+`; exec sleep 60`), "--key", filepath.Join(dir, "owner.key"), "--grace", "1s")
	stderr.Reset()
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("the job never started: %s", stderr.String())
		}
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) || !strings.Contains(stderr.String(), "no output written") {
		t.Fatalf("SIGTERM: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "sleep.out.ppml")); !os.IsNotExist(err) {
		t.Fatalf("a stopped job wrote its output (%v)", err)
	}

	// ppml sql on a runtime without the sql engine says so.
	out, err := ppml("sql", "--input", "t="+filepath.Join(dir, "in.txt.ppml"), "--query", "SELECT 1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "engine sql is not built into this runtime (built in: exec, stream)") {
		t.Fatalf("ppml sql: %v: %s", err, out)
	}
	// --help is the runtime's.
	out, err = ppml("run", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ppml-run run --manifest") || !strings.Contains(string(out), "--grace") {
		t.Fatalf("ppml run --help: %v: %s", err, out)
	}
	out, _ = exec.Command(runtimeBin.Path(), "version").CombinedOutput()
	if !strings.Contains(string(out), "engines:         exec, stream\n") {
		t.Fatalf("ppml-run version: %s", out)
	}
}

// Without a runtime, ppml says where it looked and how to get one.
func TestHandOverNotFound(t *testing.T) {
	c := ppml("run", "--manifest", "job.yaml")
	c.Env = append(c.Env, "PPML_RUN=", "PATH="+t.TempDir())
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v: %s", err, out)
	}
	for _, want := range []string{"ppml-run not found", "beside " + filepath.Dir(ppmlBin.Path()), "make build", "PPML_RUN="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%q does not say %q", out, want)
		}
	}
	c = ppml("bench", "envelope")
	c.Env = append(c.Env, "PATH="+t.TempDir())
	out, _ = c.CombinedOutput()
	if !strings.Contains(string(out), "ppml-bench not found") || !strings.Contains(string(out), "PPML_BENCH=") {
		t.Errorf("ppml bench: %s", out)
	}
}

// TestHandOverBench: 'ppml bench X ARGS' is 'ppml-bench X ARGS' (the
// benchmarks are ppml-bench's commands), seen by a stand-in ppml-bench.
func TestHandOverBench(t *testing.T) {
	dir := t.TempDir()
	stand := filepath.Join(dir, "ppml-bench")
	if err := os.WriteFile(stand, []byte("#!/bin/sh\necho \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := ppml("bench", "stream", "--size", "10MiB", "--json")
	c.Env = append(c.Env, "PPML_BENCH="+stand)
	out, err := c.CombinedOutput()
	if err != nil || string(out) != "stream --size 10MiB --json\n" {
		t.Fatalf("ppml bench ran ppml-bench with %q (%v), want %q", out, err, "stream --size 10MiB --json")
	}
}

// TestVersion: ppml version reports its own build and asks the runtime
// for its engines and digest; without a runtime it says so and exits 1.
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := ppml("version", "--json")
	c.Env = append(c.Env, "PPML_RUN="+runtimeBin.Path())
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("ppml version: %v\n%s", err, stderr.String())
	}
	var v struct {
		GoVersion string `json:"go_version"`
		Engines   []string
		Runtime   struct{ Path, SHA256 string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatal(err, stdout.String())
	}
	raw, err := os.ReadFile(runtimeBin.Path())
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); v.Runtime.SHA256 != hex.EncodeToString(sum[:]) || v.GoVersion == "" || !slices.Contains(v.Engines, "exec") {
		t.Fatalf("version: %s", stdout.String())
	}
	c = ppml("version")
	c.Env = append(c.Env, "PPML_RUN="+filepath.Join(t.TempDir(), "missing"))
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "ppml-run not found") {
		t.Fatalf("without a runtime: %v %s", err, out)
	}
}

// TestHandOverDL: a dl job, and a serve job with a TorchScript model (declared, or a dl
// model named by backend: torchscript), go to ppml-run-dl, the runtime with libtorch,
// whichever way --manifest is written; other jobs stay with ppml-run.
func TestHandOverDL(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "ppml-run-dl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"dl runtime: $*\"\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lenet, err := filepath.Abs("../../examples/dl/lenet/train.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A serve job that declares a TorchScript model, or serves a dl model trained by ppml
	// (backend: torchscript), runs on libtorch too.
	serveTS, err := filepath.Abs("../../examples/pytorch-lenet/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	serveDL, err := filepath.Abs("../../examples/dl/lenet/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "--manifest", lenet, "--tee", "sim"},
		{"run", "--tee", "sim", "--manifest=" + lenet},
		{"run", "--manifest", serveTS, "--tee", "sim"},
		{"run", "--manifest", serveDL, "--tee", "sim"},
	} {
		c := ppml(args...)
		c.Env = append(c.Env, "PPML_RUN_DL="+fake)
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 || !strings.HasPrefix(string(out), "dl runtime: run ") {
			t.Fatalf("ppml %s: %v\n%s\nwant ppml-run-dl run with the arguments and its exit status 7", strings.Join(args, " "), err, out)
		}
	}
	// A serve job whose models are not named TorchScript goes to ppml-run (this test's
	// ppml-run has only the exec engine, and says so).
	tabular, err := filepath.Abs("../../examples/serve/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := ppml("run", "--manifest", tabular, "--tee", "sim")
	c.Env = append(c.Env, "PPML_RUN_DL="+fake, "PPML_RUN="+runtimeBin.Path())
	if out, _ := c.CombinedOutput(); strings.Contains(string(out), "dl runtime") || !strings.Contains(string(out), "serve") {
		t.Fatalf("a tabular serve job went to the dl runtime, or ppml-run did not answer:\n%s", out)
	}
	// An exec job and an unreadable manifest go to ppml-run (which reports
	// what is wrong with the manifest).
	c = ppml("run", "--manifest", filepath.Join(dir, "missing.yaml"))
	c.Env = append(c.Env, "PPML_RUN_DL="+fake)
	out, _ := c.CombinedOutput()
	if strings.Contains(string(out), "dl runtime") || !strings.Contains(string(out), "missing.yaml") {
		t.Fatalf("a missing manifest went to the dl runtime or was not reported:\n%s", out)
	}
}
