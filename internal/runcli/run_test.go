package runcli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
)

// TestRunHelperProcess is not a test: it is this test binary acting as the
// ppml-run command (Main, as cmd/ppml-run runs it), so the signal tests can
// send real signals to a real `ppml-run run` process.
func TestRunHelperProcess(t *testing.T) {
	args := os.Getenv("PPML_RUN_HELPER_ARGS")
	if args == "" {
		t.Skip("helper process only")
	}
	os.Exit(Main(strings.Split(args, "\x1f")))
}

type runJob struct {
	dir, key, manifest, pidFile, marker string
	start                               time.Time
}

// newRunJob writes a key, an encrypted input holding a marker, and a job
// whose program copies the input to its output, records its pid, and
// sleeps for sleepSec seconds.
func newRunJob(t *testing.T, sleepSec int) *runJob {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	t.Setenv("TMPDIR", t.TempDir())
	j := &runJob{dir: t.TempDir(), start: time.Now()}
	j.key = filepath.Join(j.dir, "owner.key")
	k, err := keyfile.Generate(j.key, false)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 12)
	rand.Read(b)
	j.marker = "PPMLMARKER" + hex.EncodeToString(b)
	w, err := envelope.CreateFile(filepath.Join(j.dir, "in.txt.ppml"), k, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("secret " + j.marker + "\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(j.dir, "out"), 0o755)
	j.pidFile = filepath.Join(j.dir, "pid")
	j.manifest = filepath.Join(j.dir, "job.yaml")
	m := `name: sleeper
engine: exec
inputs:
  data: in.txt.ppml
outputs:
  copy:
    path: out/copy.txt.ppml
    key: file:owner.key
parameters:
  command:
    - /usr/bin/python3
    - -c
    - |
      import os, time
      data = open(os.environ["PPML_INPUT_DATA"]).read()
      open(os.environ["PPML_OUTPUT_COPY"], "w").write(data)
      open("scratch.txt", "w").write(data)
      open(os.environ["PIDFILE"], "w").write(str(os.getpid()))
      time.sleep(` + strconv.Itoa(sleepSec) + `)
  env: [PIDFILE=` + j.pidFile + `]
`
	if err := os.WriteFile(j.manifest, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return j
}

// leaks lists files (in the job's directories in full; in the temporary
// directories, those changed since the job started) that hold the marker.
func (j *runJob) leaks() []string {
	var found []string
	seen := map[string]bool{}
	scan := func(root string, since time.Time) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || seen[p] {
				return nil
			}
			seen[p] = true
			if d.IsDir() && strings.HasPrefix(d.Name(), "go-build") {
				return filepath.SkipDir
			}
			fi, err := d.Info()
			if err != nil || !fi.Mode().IsRegular() || fi.ModTime().Before(since) || fi.Size() > 256<<20 {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(j.marker)) {
				found = append(found, p)
			}
			return nil
		})
	}
	scan(j.dir, time.Time{})
	scan(os.Getenv("TMPDIR"), time.Time{})
	for _, r := range []string{"/tmp", "/dev/shm"} {
		scan(r, j.start.Add(-2*time.Second))
	}
	return found
}

func (j *runJob) ppml(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], "-test.run=^TestRunHelperProcess$")
	c.Env = append(os.Environ(), "PPML_RUN_HELPER_ARGS="+strings.Join(args, "\x1f"), "PPML_SERVER=")
	return c
}

func TestRunInterruptedBySignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			j := newRunJob(t, 120)
			c := j.ppml("run", "--manifest", j.manifest, "--key", j.key, "--grace", "2s")
			var stderr bytes.Buffer
			c.Stderr = &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			var pid int
			for deadline := time.Now().Add(60 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					c.Process.Kill()
					t.Fatalf("the job never started: %s", stderr.String())
				}
				if b, err := os.ReadFile(j.pidFile); err == nil && len(b) > 0 {
					pid, _ = strconv.Atoi(string(b))
				}
			}
			if err := c.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := c.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
				t.Fatalf("ppml run after %s: %v, want exit %d; stderr:\n%s", sig, err, 128+int(sig), stderr.String())
			}
			if !strings.Contains(stderr.String(), "no output written") {
				t.Fatalf("stderr does not say the output was discarded:\n%s", stderr.String())
			}
			if syscall.Kill(pid, 0) == nil {
				st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				if !strings.Contains(string(st), ") Z") {
					t.Fatalf("the program (pid %d) survived", pid)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(j.dir, "out")); len(ents) != 0 {
				t.Fatalf("outputs left: %v", ents)
			}
			if l := j.leaks(); len(l) > 0 {
				t.Fatalf("plaintext found in %v", l)
			}
		})
	}
}

func TestRunCommand(t *testing.T) {
	j := newRunJob(t, 0)
	var stdout, stderr bytes.Buffer
	c := j.ppml("run", "--manifest", j.manifest, "--key", j.key, "--json")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("ppml run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"exit_code": 0`) || !strings.Contains(stdout.String(), "copy.txt.ppml") {
		t.Fatalf("json result: %s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "WARNING: no key service") {
		t.Fatalf("no development warning: %s", stderr.String())
	}
	k, err := keyfile.Load(j.key)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	f, err := os.Open(filepath.Join(j.dir, "out", "copy.txt.ppml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := envelope.Decrypt(&out, f, k); err != nil || out.String() != "secret "+j.marker+"\n" {
		t.Fatalf("decrypted output %q, %v", out.String(), err)
	}
	if l := j.leaks(); len(l) > 0 {
		t.Fatalf("plaintext found in %v", l)
	}

	// A manifest error exits 1 before anything else, naming the problem.
	bad := filepath.Join(j.dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nengine: exec\nbogus: 1\nparameters:\n  command: [true]\n"), 0o644)
	stderr.Reset()
	c = j.ppml("run", "--manifest", bad)
	c.Stderr = &stderr
	err = c.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "bogus: unknown field") {
		t.Fatalf("bad manifest: %v\n%s", err, stderr.String())
	}

	// ... also when a key service and TEE detection would come next.
	stderr.Reset()
	c = j.ppml("run", "--manifest", bad, "--server", "https://127.0.0.1:1", "--token", "t", "--tee", "auto")
	c.Stderr = &stderr
	if err := c.Run(); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "bogus: unknown field") {
		t.Fatalf("bad manifest with a key service: %v\n%s", err, stderr.String())
	}

	// The program's status is ppml's status.
	os.WriteFile(bad, []byte("name: x\nengine: exec\nparameters:\n  command: [sh, -c, 'exit 5']\n"), 0o644)
	c = j.ppml("run", "--manifest", bad)
	if err := c.Run(); !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Fatalf("exit 5: %v", err)
	}
}

// A worker's place in a distributed job is checked before anything else; a
// job on one worker refuses one.
func TestRunWorkerFlags(t *testing.T) {
	j := newRunJob(t, 0)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--worker-index", "1"}, 2, "needs both --worker-index and --peers"},
		{[]string{"--worker-index", "one", "--peers", "a:1,b:2"}, 2, `--worker-index "one"`},
		{[]string{"--worker-index", "2", "--peers", "a:1,b:2"}, 2, "--peers lists 2 worker(s)"},
		{[]string{"--worker-index", "0", "--peers", "a:1,b"}, 2, `--peers: "b" is not HOST:PORT`},
		{[]string{"--listen", ":7070"}, 2, "give --worker-index and --peers"},
		{[]string{"--worker-index", "0", "--peers", "a:1"}, 1, "runs on one worker"},
	} {
		code, _, stderr := run(t, nil, append([]string{"run", "--manifest", j.manifest, "--key", j.key}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %s; want %d, %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
