package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/memfd"
	"github.com/ppml/ppml/memfd/memfdtest"
)

// sandboxEnv, in a program's environment, makes the shim (this test
// binary) first enter a mount namespace of its own with a fresh tmpfs over
// the directory it names — the runtime's in-memory directory — so the child
// cannot reach the runtime's in-memory files by path, as a Gramine child
// enclave cannot reach its parent's tmpfs. It runs from a package variable's
// initializer, before the shim's init, on the main thread (locked during
// initialization), which is the thread the shim then execs from.
const sandboxEnv = "PPML_TEST_EXEC_SANDBOX"

// sandboxExit is the sandbox's status when it cannot be set up (not root).
const sandboxExit = 126

var _ = enterSandbox()

func enterSandbox() bool {
	dir := os.Getenv(sandboxEnv)
	if dir == "" || len(os.Args) == 0 || os.Args[0] != shimArg0 {
		return false
	}
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "sandbox: %s: %v\n", what, err)
		os.Exit(sandboxExit)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		fail("unshare", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fail("private mounts", err)
	}
	if err := unix.Mount("ppml-sandbox", dir, "tmpfs", 0, "mode=0700"); err != nil {
		fail("tmpfs", err)
	}
	return true
}

// tmpfsRoute makes memfd.NewTmpfs put its files in a directory of the
// test's: the route the runtime takes in Gramine.
func tmpfsRoute(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(memfd.EnvMemFS, dir)
	return dir
}

func newOutput(t *testing.T) *memfd.File {
	t.Helper()
	out, err := memfd.New("out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return out
}

// The streamed route: inputs that are not memfds reach the program as
// read-only regular files in its own directory (random access, reopening,
// directories, an empty directory), never as the runtime's own files;
// outputs are named pipes. Nothing is left behind.
func TestStreamedInputs(t *testing.T) {
	memfs := tmpfsRoute(t)
	data := memfdtest.SealedTmpfs(t, []byte("0123456789\n"))
	a, b := memfdtest.SealedTmpfs(t, []byte("A\n")), memfdtest.SealedTmpfs(t, []byte("B\n"))
	big := bytes.Repeat([]byte("x"), 3<<20+17) // more than a pipe holds
	bigIn := memfdtest.SealedTmpfs(t, big)
	out, copyOut := newOutput(t), newOutput(t)
	script := `set -e
for v in "$PPML_INPUT_DATA" "$PPML_INPUT_PARTS/x.csv" "$PPML_INPUT_PARTS/sub/y.csv" "$PPML_INPUT_BIG"; do
  [ -f "$v" ] || { echo "$v is not a regular file" >&2; exit 3; }
  case "$v" in /proc/*|"$MEMFS"/ppml-mem-*) echo "$v is not the program's own file" >&2; exit 4;; esac
done
[ -d "$PPML_INPUT_EMPTY" ] && [ -z "$(ls -A "$PPML_INPUT_EMPTY")" ] || exit 5
[ -p "$PPML_OUTPUT_RESULT" ] || exit 6
{
  tail -c 4 "$PPML_INPUT_DATA"          # seeks from the end
  head -c 3 "$PPML_INPUT_DATA"; echo    # opens it again
  cat "$PPML_INPUT_PARTS/x.csv" "$PPML_INPUT_PARTS/sub/y.csv"
  wc -c < "$PPML_INPUT_BIG"
} > "$PPML_OUTPUT_RESULT"
cat "$PPML_INPUT_BIG" > "$PPML_OUTPUT_COPY"`
	var stderr bytes.Buffer
	err := Run(context.Background(), Config{
		Params: sh(script, execspec.EnvVar{Name: "MEMFS", Value: memfs}),
		Inputs: []Input{{Name: "data", File: data}, {Name: "big", File: bigIn},
			{Name: "parts", IsDir: true, Dir: []DirEntry{{Path: "x.csv", File: a}, {Path: "sub/y.csv", File: b}}},
			{Name: "empty", IsDir: true}},
		Outputs: []Output{{Name: "result", File: out}, {Name: "copy", File: copyOut}},
		Stderr:  &stderr, Memory: 256 << 20,
	})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	if got, want := readAll(t, out), "789\n012\nA\nB\n"+fmt.Sprint(len(big))+"\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if got := readAll(t, copyOut); got != string(big) {
		t.Fatalf("copied %d bytes, want %d", len(got), len(big))
	}
	ents, _ := os.ReadDir(memfs)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "ppml-mem-") {
			t.Errorf("left in the in-memory directory: %s", e.Name())
		}
	}
}

// Outputs: one never opened is empty; one opened after a long computation
// and one written by a background process of the program arrive whole; a
// failing program's status wins over what it wrote.
func TestOutputPipes(t *testing.T) {
	late, never, bg := newOutput(t), newOutput(t), newOutput(t)
	script := `set -e
( sleep 0.2; echo background > "$PPML_OUTPUT_BG" ) &
sleep 0.3
echo late > "$PPML_OUTPUT_LATE"
wait`
	var stderr bytes.Buffer
	err := Run(context.Background(), Config{Params: sh(script),
		Outputs: []Output{{Name: "late", File: late}, {Name: "never", File: never}, {Name: "bg", File: bg}}, Stderr: &stderr})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	if got := readAll(t, late) + readAll(t, never) + readAll(t, bg); got != "late\nbackground\n" {
		t.Fatalf("outputs %q", got)
	}
	failed := newOutput(t)
	err = Run(context.Background(), Config{Params: sh(`echo partial > "$PPML_OUTPUT_F"; exit 3`), Outputs: []Output{{Name: "f", File: failed}}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("failing program: %v", err)
	}
}

// The Gramine semantics that matter, simulated: the child runs in a mount
// namespace where the runtime's in-memory directory is another, empty
// tmpfs. It cannot open the runtime's copy of its input (the program checks)
// and still gets its inputs and returns its outputs, through the pipes
// alone.
func TestChildCannotSeeRuntimeFiles(t *testing.T) {
	memfs := tmpfsRoute(t)
	in := memfdtest.SealedTmpfs(t, []byte("secret rows\n"))
	parts := memfdtest.SealedTmpfs(t, []byte("part\n"))
	out := newOutput(t)
	script := `set -e
[ ! -e "$RUNTIME_COPY" ] || { echo "the runtime's file is visible" >&2; exit 9; }
{ cat "$PPML_INPUT_DATA" "$PPML_INPUT_PARTS/p.txt"; pwd; } > "$PPML_OUTPUT_RESULT"`
	var stderr bytes.Buffer
	err := Run(context.Background(), Config{
		Params:  sh(script, execspec.EnvVar{Name: sandboxEnv, Value: memfs}, execspec.EnvVar{Name: "RUNTIME_COPY", Value: in.Path()}),
		Inputs:  []Input{{Name: "data", File: in}, {Name: "parts", IsDir: true, Dir: []DirEntry{{Path: "p.txt", File: parts}}}},
		Outputs: []Output{{Name: "result", File: out}}, Stderr: &stderr,
		TempRoot: t.TempDir(), // the private directory (named pipes) stays visible
	})
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code == sandboxExit && strings.HasPrefix(stderr.String(), "sandbox: ") {
		t.Skipf("no mount namespace here (needs root): %s", stderr.String())
	}
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	got := readAll(t, out)
	if !strings.HasPrefix(got, "secret rows\npart\n") || !strings.Contains(got, "ppml-exec-") {
		t.Fatalf("output %q", got)
	}
	// The check in the program is real: without the sandbox the runtime's
	// file is there.
	if _, err := os.Stat(in.Path()); err != nil {
		t.Fatalf("runtime's file: %v", err)
	}
}

// The Python SDK's ppml.inputs()/ppml.outputs() with pandas on the
// streamed route: examples/python-sdk/analysis.py gives the same output as
// when it runs on plain files.
func TestPythonSDKStreamed(t *testing.T) {
	needPython(t)
	if exec.Command("/usr/bin/python3", "-c", "import pandas").Run() != nil {
		t.Skip("needs python3-pandas")
	}
	script, err := filepath.Abs("../../examples/python-sdk/analysis.py")
	if err != nil {
		t.Fatal(err)
	}
	sdk, _ := filepath.Abs("../../python")
	csv, err := os.ReadFile("../../examples/data/patients.csv")
	if err != nil {
		t.Fatal(err)
	}
	// The reference: the same program on plain files.
	dir := t.TempDir()
	plainIn, plainOut := filepath.Join(dir, "patients.csv"), filepath.Join(dir, "summary.csv")
	if err := os.WriteFile(plainIn, csv, 0o600); err != nil {
		t.Fatal(err)
	}
	ref := exec.Command("/usr/bin/python3", "-s", script)
	ref.Env = []string{"PYTHONPATH=" + sdk, "OPENBLAS_NUM_THREADS=1", "PPML_INPUT_PATIENTS=" + plainIn, "PPML_OUTPUT_SUMMARY=" + plainOut}
	if b, err := ref.CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, b)
	}
	want, err := os.ReadFile(plainOut)
	if err != nil {
		t.Fatal(err)
	}

	tmpfsRoute(t)
	in := memfdtest.SealedTmpfs(t, csv)
	out := newOutput(t)
	var stdout, stderr bytes.Buffer
	err = Run(context.Background(), Config{
		Params: &execspec.Params{Command: []string{"/usr/bin/python3", "-s", script},
			Env: []execspec.EnvVar{{Name: "PYTHONPATH", Value: sdk}, {Name: "OPENBLAS_NUM_THREADS", Value: "1"}}},
		Inputs: []Input{{Name: "patients", File: in}}, Outputs: []Output{{Name: "summary", File: out}},
		Stdout: &stdout, Stderr: &stderr, Memory: 1 << 30,
	})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	if got := readAll(t, out); got != string(want) || len(want) < 40 {
		t.Fatalf("summary through the hand-over:\n%s\nwant\n%s", got, want)
	}
}
