//go:build linux && amd64

package syscalls_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/gramine"
	"github.com/ppml/ppml/gramine/syscalls"
	"github.com/ppml/ppml/internal/buildtest"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/ml/dataset"
)

// The jobs run in a real ppml-run with every engine, started by this test
// binary re-executed as a shim that confines itself and execs the runtime.
var runtimeBin = buildtest.Runtime()

const (
	shimEnv  = "PPML_TEST_GRAMINE_SHIM"
	probeEnv = "PPML_TEST_GRAMINE_PROBE"
	// asEnv is the RLIMIT_AS the shim sets: the enclave size.
	asEnv = "PPML_TEST_GRAMINE_RLIMIT_AS"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(shimEnv) != "":
		os.Unsetenv(shimEnv)
		if v := os.Getenv(asEnv); v != "" {
			os.Unsetenv(asEnv)
			n, err := strconv.ParseUint(v, 10, 64)
			if err == nil {
				err = unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: n, Max: n})
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "RLIMIT_AS:", err)
				os.Exit(121)
			}
		}
		// The tunable was for this shim only (see confined): the program
		// it execs meets rseq's ENOSYS from its first instruction, as
		// in Gramine, and glibc then leaves rseq off by itself.
		os.Unsetenv("GLIBC_TUNABLES")
		err := syscalls.Exec(os.Args[1:], os.Environ())
		fmt.Fprintln(os.Stderr, err)
		os.Exit(121)
	case os.Getenv(probeEnv) != "":
		probe()
		os.Exit(0)
	}
	os.Exit(buildtest.Main(m, runtimeBin))
}

// confined is a command that runs argv under Gramine's system-call surface.
func confined(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(self, argv...)
	// The shim confines itself with TSYNC after glibc registered rseq on
	// its threads; a thread it creates later would then fail to register
	// and glibc aborts ("rseq registration failed"). The shim's own glibc
	// therefore leaves rseq off; in Gramine rseq is missing from the start.
	c.Env = append(os.Environ(), shimEnv+"=1", "PPML_SERVER=", "GLIBC_TUNABLES=glibc.pthread.rseq=0")
	return c
}

// probe prints, for each call Gramine lacks that ppml once used, the errno
// it gets here; it runs confined, in a Go program that has started.
func probe() {
	report := func(name string, err error) {
		fmt.Printf("%s: %v\n", name, err)
	}
	_, err := unix.MemfdCreate("probe", 0)
	report("memfd_create", err)
	report("prctl", unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0))
	report("symlinkat", unix.Symlinkat("x", unix.AT_FDCWD, filepath.Join(os.TempDir(), "probe-link")))
	_, _, e := unix.Syscall(unix.SYS_SYMLINK, 0, 0, 0)
	report("symlink", e)
	_, err = unix.PidfdOpen(os.Getpid(), 0)
	report("pidfd_open", err)
	_, _, e = unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	report("clone3", e)
	// Implemented calls still work: a child process (clone, execve, wait4).
	out, err := exec.Command("/bin/sh", "-c", "echo child").Output()
	report("fork+exec", fmt.Errorf("%q %v", out, err))
}

// TestFilter: the filter answers ENOSYS exactly where Gramine has no
// handler, and a Go program (this one) starts and forks under it.
func TestFilter(t *testing.T) {
	for _, name := range []string{"memfd_create", "prctl", "symlink", "symlinkat", "pidfd_open", "clone3", "pidfd_send_signal", "rseq"} {
		if syscalls.IsImplemented(name) {
			t.Errorf("%s is in the implemented table", name)
		}
	}
	for _, name := range []string{"read", "clone", "execve", "wait4", "mmap", "futex", "pipe2", "socketpair", "setpgid", "kill", "setrlimit"} {
		if !syscalls.IsImplemented(name) {
			t.Errorf("%s is missing from the implemented table", name)
		}
	}
	self, _ := os.Executable()
	c := confined(t, self)
	c.Env = append(c.Env, probeEnv+"=1")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("confined probe: %v\n%s", err, out)
	}
	for _, want := range []string{
		"memfd_create: function not implemented", "prctl: function not implemented",
		"symlinkat: function not implemented", "symlink: function not implemented",
		"pidfd_open: function not implemented", "clone3: function not implemented",
		`fork+exec: "child\n" <nil>`,
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("probe output lacks %q:\n%s", want, out)
		}
	}
}

// workspace is a directory with an owner key and encrypted inputs.
type workspace struct {
	dir string
	key *envelope.LocalKey
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	w := &workspace{dir: t.TempDir()}
	k, err := keyfile.Generate(filepath.Join(w.dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	w.key = k.LocalKey
	if err := os.Mkdir(filepath.Join(w.dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *workspace) encrypt(t *testing.T, rel string, plain []byte, ct envelope.ContentType) {
	t.Helper()
	p := filepath.Join(w.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	envelopetest.Encrypt(t, p, w.key, plain, ct)
}

func (w *workspace) out(t *testing.T, name string) []byte {
	t.Helper()
	return envelopetest.Decrypt(t, filepath.Join(w.dir, "out", name), w.key)
}

// run runs the job manifest text confined, in ppml-run, as `ppml run`
// would, with as much address space as `ppml gramine manifest` gives its
// enclave (sgx.enclave_size: without EDMM, everything mapped must fit).
func (w *workspace) run(t *testing.T, name, manifest string) {
	t.Helper()
	p := filepath.Join(w.dir, name+".yaml")
	if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := job.Load(p, specs.All)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gramine.New(m, gramine.Options{Runtime: runtimeBin.Path(), JobPath: p, AllowKeyFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: enclave size %s (%d MiB needed), %d threads", name, gramine.FormatGramineSize(g.EnclaveSize), g.Sizing.Total>>20, g.MaxThreads)
	c := confined(t, runtimeBin.Path(), "run", "--manifest", p, "--key", filepath.Join(w.dir, "owner.key"))
	c.Env = append(c.Env, asEnv+"="+strconv.FormatInt(g.EnclaveSize, 10))
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = &stderr, &stderr
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 121 {
			t.Fatalf("%s: the shim could not confine the runtime: %s", name, stderr.String())
		}
		t.Fatalf("%s under Gramine's system calls: %v\n%s", name, err, stderr.String())
	}
}

// TestJobsUnderGramineSyscalls runs a real job of each engine in ppml-run
// with only the system calls Gramine implements and the address space of
// the enclave `ppml gramine manifest` sizes for it.
func TestJobsUnderGramineSyscalls(t *testing.T) {
	w := newWorkspace(t)
	w.encrypt(t, "names.txt.ppml", []byte("Ada\nGrace\n"), envelope.TypeBytes)
	w.encrypt(t, "parts/a.txt.ppml", []byte("first\n"), envelope.TypeBytes)
	w.encrypt(t, "parts/sub/b.txt.ppml", []byte("second\n"), envelope.TypeBytes)

	t.Run("exec", func(t *testing.T) {
		// Three file inputs, a directory input and two outputs. Without
		// memfd_create and symlink the runtime must take the route built
		// for Gramine: inputs streamed to the child (regular files of its
		// own, not /proc/self/fd), outputs named pipes; the program checks.
		w.run(t, "exec", `name: exec-under-gramine
engine: exec
inputs: {names: names.txt.ppml, first: parts/a.txt.ppml, second: parts/sub/b.txt.ppml, parts: parts}
outputs:
  greeting: {path: out/greeting.txt.ppml, key: file:owner.key}
  joined: {path: out/joined.txt.ppml, key: file:owner.key}
parameters:
  command:
    - /bin/sh
    - -c
    - |
      set -e
      for f in "$PPML_INPUT_NAMES" "$PPML_INPUT_FIRST" "$PPML_INPUT_PARTS/sub/b.txt"; do
        case "$f" in /proc/*) echo "$f: shared descriptor, not the Gramine route" >&2; exit 3;; esac
        [ -f "$f" ] || exit 4
      done
      [ -p "$PPML_OUTPUT_GREETING" ] || { echo "outputs are not named pipes" >&2; exit 5; }
      while read n; do echo "Hello, $n"; done < "$PPML_INPUT_NAMES" > "$PPML_OUTPUT_GREETING"
      cat "$PPML_INPUT_FIRST" "$PPML_INPUT_SECOND" "$PPML_INPUT_PARTS/a.txt" "$PPML_INPUT_PARTS/sub/b.txt" > "$PPML_OUTPUT_JOINED"
resources: {memory: 256MiB, threads: 1}
`)
		if got := string(w.out(t, "greeting.txt.ppml")); got != "Hello, Ada\nHello, Grace\n" {
			t.Errorf("greeting %q", got)
		}
		if got := string(w.out(t, "joined.txt.ppml")); got != "first\nsecond\nfirst\nsecond\n" {
			t.Errorf("joined %q", got)
		}
	})

	t.Run("sql", func(t *testing.T) {
		w.run(t, "sql", `name: sql-under-gramine
engine: sql
inputs: {names: names.txt.ppml}
outputs:
  counted: {path: out/counted.csv.ppml, key: file:owner.key, content_type: text/csv}
parameters:
  outputs:
    counted:
      format: csv
      query: SELECT upper(line) AS name, length(line) AS n FROM names ORDER BY name
resources: {memory: 256MiB, threads: 2}
`)
		if got := string(w.out(t, "counted.csv.ppml")); got != "name,n\nADA,3\nGRACE,5\n" {
			t.Errorf("sql output %q", got)
		}
	})

	t.Run("ml", func(t *testing.T) {
		plain, err := os.ReadFile(dataset.Require(t, dataset.Boston))
		if err != nil {
			t.Fatal(err)
		}
		w.encrypt(t, "boston.csv.ppml", plain, envelope.TypeCSV)
		w.run(t, "ml", `name: ml-under-gramine
engine: ml
inputs: {train: boston.csv.ppml}
outputs:
  model: {path: out/model.ppml, key: file:owner.key, content_type: application/json}
  report: {path: out/report.json.ppml, key: file:owner.key, content_type: application/json}
parameters: {task: train, algorithm: xgboost, objective: regression, label: medv, rounds: 20, test_fraction: 0.2, seed: 42}
resources: {memory: 256MiB, threads: 2}
`)
		if r := w.out(t, "report.json.ppml"); !bytes.Contains(r, []byte(`"rmse"`)) {
			t.Errorf("ml report %s", r)
		}
	})
}

// TestAddressSpaceLimitBites: the limit the jobs above ran under is real —
// ppml-run cannot even start in 512 MiB (the Go runtime's reservations,
// or before them the shared libraries).
func TestAddressSpaceLimitBites(t *testing.T) {
	c := confined(t, runtimeBin.Path(), "version")
	c.Env = append(c.Env, asEnv+"="+strconv.Itoa(512<<20))
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	// Either the Go runtime cannot reserve its arenas ("fatal error") or,
	// with libtorch linked in, the dynamic loader cannot even map the
	// shared libraries ("failed to map segment"): both mean no start.
	if !errors.As(err, &ee) || ee.ExitCode() == 121 || !(strings.Contains(string(out), "fatal error") || strings.Contains(string(out), "failed to map segment")) {
		t.Fatalf("ppml-run in 512 MiB: %v\n%.300s", err, out)
	}
}
