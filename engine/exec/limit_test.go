package exec

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/memfd"
)

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 (Debian python3)")
	}
}

func python(program string) *execspec.Params {
	return &execspec.Params{Command: []string{"/usr/bin/python3", "-c", program}}
}

const limit64M = 64 << 20

// A program that allocates ten times its limit fails; one that stays well
// inside it succeeds.
func TestMemoryLimitPython(t *testing.T) {
	needPython(t)
	// bytearray writes every byte, so the pages are really used.
	over := python("b = bytearray(10 * " + strconv.Itoa(limit64M) + ")\nprint('allocated')")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), Config{Params: over, Memory: limit64M, Stdout: &stdout, Stderr: &stderr})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code == 0 {
		t.Fatalf("over the limit: want a failed program, got %v (stdout %q)", err, stdout.String())
	}
	if !strings.Contains(stderr.String(), "MemoryError") || strings.Contains(stdout.String(), "allocated") {
		t.Fatalf("over the limit: stdout %q stderr %q", stdout.String(), stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	within := python("b = bytearray(16 << 20)\nprint(len(b))")
	if err := Run(context.Background(), Config{Params: within, Memory: limit64M, Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("within the limit: %v (stderr %q)", err, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != strconv.Itoa(16<<20) {
		t.Fatalf("within the limit: stdout %q", got)
	}

	// Without a limit, twice the limit goes through: the limit, not the
	// machine, stopped the first program.
	stdout.Reset()
	if err := Run(context.Background(), Config{Params: python("b = bytearray(2 * " + strconv.Itoa(limit64M) + ")\nprint('allocated')"), Stdout: &stdout, Stderr: &stderr}); err != nil || !strings.Contains(stdout.String(), "allocated") {
		t.Fatalf("no limit: %v (stdout %q)", err, stdout.String())
	}
}

// numpy maps large arrays with anonymous mmap, which RLIMIT_DATA counts
// (Linux ≥ 4.7); the import itself must still work under the limit.
// 256 MiB, not 64: under a few tens of MiB OpenBLAS cannot allocate its
// per-thread buffers and hangs at exit instead of failing.
func TestMemoryLimitNumpy(t *testing.T) {
	const limit = 256 << 20
	needPython(t)
	if exec.Command("/usr/bin/python3", "-c", "import numpy").Run() != nil {
		t.Skip("needs python3-numpy")
	}
	var stdout, stderr bytes.Buffer
	over := python("import numpy as np\na = np.ones(10 * " + strconv.Itoa(limit) + ", dtype=np.uint8)\nprint(int(a.sum()))")
	err := Run(context.Background(), Config{Params: over, Memory: limit, Stdout: &stdout, Stderr: &stderr})
	var ee *ExitError
	if !errors.As(err, &ee) || !strings.Contains(stderr.String(), "MemoryError") {
		t.Fatalf("numpy over the limit: %v (stdout %q stderr %q)", err, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	within := python("import numpy as np\na = np.ones(64 << 20, dtype=np.uint8)\nprint(int(a.sum()))")
	if err := Run(context.Background(), Config{Params: within, Memory: limit, Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("numpy within the limit: %v (stderr %q)", err, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != strconv.Itoa(64<<20) {
		t.Fatalf("numpy within the limit: stdout %q", got)
	}
}

// The shim is invisible: the program sees its own argv and environment,
// its descriptors, its own process group, no death signal (Gramine has no
// prctl), and the
// limit as both soft and hard RLIMIT_DATA.
func TestMemoryLimitShimIsInvisible(t *testing.T) {
	needPython(t)
	in := memInput(t, "in", "payload")
	out, err := memfd.New("out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	prog := `import os, sys, ctypes, resource, json
libc = ctypes.CDLL(None, use_errno=True)
sig = ctypes.c_int(0)
libc.prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
json.dump({
  "argv": sys.argv[1:],
  "env": sorted(k for k in os.environ if k.startswith("PPML_")),
  "input": open(os.environ["PPML_INPUT_DATA"]).read(),
  "own_group": os.getpgid(0) == os.getpid(),
  "pdeathsig": sig.value,
  "data": list(resource.getrlimit(resource.RLIMIT_DATA)),
  "exe": os.readlink("/proc/self/exe"),
}, open(os.environ["PPML_OUTPUT_RESULT"], "w"), sort_keys=True)`
	p := &execspec.Params{Command: []string{"/usr/bin/python3", "-c", prog, "one", "two words"}}
	var stderr bytes.Buffer
	err = Run(context.Background(), Config{Params: p, Memory: limit64M,
		Inputs: []Input{{Name: "data", File: in}}, Outputs: []Output{{Name: "result", File: out}}, Stderr: &stderr})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	got := readAll(t, out)
	want := `{"argv": ["one", "two words"], "data": [67108864, 67108864], "env": ["PPML_INPUT_DATA", "PPML_OUTPUT_RESULT"], "exe": "` + resolved(t, "/usr/bin/python3") + `", "input": "payload", "own_group": true, "pdeathsig": 0}`
	if got != want {
		t.Fatalf("program saw\n%s\nwant\n%s", got, want)
	}
}

func resolved(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Malformed shim arguments are refused before anything runs.
func TestShimArguments(t *testing.T) {
	for _, args := range [][]string{nil, {"x", "/", "0", "", "/bin/true", "true"}, {"-1", "/", "0", "", "/bin/true", "true"},
		{"0", "rel", "0", "", "/bin/true", "true"}, {"0", "/", "2", "", "/bin/true", "true"}, {"0", "/", "0", "rel", "/bin/true", "true"}, {"0", "/", "0", "", "/bin/true"}} {
		if err := runShim(args, nil); err == nil {
			t.Fatalf("runShim(%q) accepted", args)
		}
	}
}
