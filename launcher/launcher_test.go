package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/engine/exec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
)

// jobEnv is a job directory: an owner key, a file input, a directory input
// and the markers planted in their plaintext.
type jobEnv struct {
	dir, keyPath, outDir string
	key                  *envelope.LocalKey
	markers              []string
	start                time.Time
}

func newJobEnv(t *testing.T) *jobEnv {
	t.Helper()
	// Child programs and the engine put temporary files under TMPDIR; give
	// this test its own so the scan covers it fully.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	e := &jobEnv{dir: t.TempDir(), start: time.Now()}
	e.keyPath = filepath.Join(e.dir, "owner.key")
	e.key = newKey(t, e.keyPath).LocalKey
	e.outDir = filepath.Join(e.dir, "out")
	if err := os.Mkdir(e.outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	m1, m2, m3 := marker(t), marker(t), marker(t)
	e.markers = []string{m1, m2, m3}
	encryptTo(t, filepath.Join(e.dir, "people.txt.ppml"), e.key, []byte("alice\nbob\n"+m1+"\n"))
	if err := os.Mkdir(filepath.Join(e.dir, "parts"), 0o755); err != nil {
		t.Fatal(err)
	}
	encryptTo(t, filepath.Join(e.dir, "parts", "a.csv.ppml"), e.key, []byte("x\n1\n"+m2+"\n"))
	if err := os.Mkdir(filepath.Join(e.dir, "parts", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	encryptTo(t, filepath.Join(e.dir, "parts", "sub", "b.csv.ppml"), e.key, []byte("x\n2\n"+m3+"\n"))
	return e
}

func (e *jobEnv) scan(t *testing.T) {
	t.Helper()
	scanForMarkers(t, e.start, []string{e.dir, os.Getenv("TMPDIR")}, e.markers...)
}

// manifest writes job.yaml with a Python program (run with python3 -c).
func (e *jobEnv) manifest(t *testing.T, name, program string, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nengine: exec\ninputs:\n  people: people.txt.ppml\n  parts: parts\n", name)
	b.WriteString("outputs:\n  greeting:\n    path: out/greeting.txt.ppml\n    key: file:owner.key\n    content_type: text/plain\n")
	b.WriteString("  stats:\n    path: out/stats.json.ppml\n    key: file:owner.key\n    content_type: application/json\n")
	b.WriteString("parameters:\n  command:\n    - /usr/bin/python3\n    - -c\n    - |\n")
	for _, l := range strings.Split(program, "\n") {
		b.WriteString("      " + l + "\n")
	}
	b.WriteString(extra)
	p := filepath.Join(e.dir, "job.yaml")
	writeFile(t, p, b.String())
	return p
}

const helloProgram = `import os, json
names = open(os.environ["PPML_INPUT_PEOPLE"]).read().split()
open(os.environ["PPML_OUTPUT_GREETING"], "w").write("".join("hello %s\n" % n for n in names))
d = os.environ["PPML_INPUT_PARTS"]
files = sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
rows = sum(len(open(os.path.join(d, f)).read().splitlines()) for f in files)
json.dump({"files": files, "rows": rows, "cwd_is_private": os.getcwd().find("ppml-exec-") >= 0}, open(os.environ["PPML_OUTPUT_STATS"], "w"), sort_keys=True)
print("stdout passes through")`

func TestRunLocalEndToEnd(t *testing.T) {
	needPython(t)
	e := newJobEnv(t)
	mf := e.manifest(t, "hello", helloProgram, "")
	keys, err := launcher.NewLocalKeys(e.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, log bytes.Buffer
	res, err := runJob(context.Background(), mf, launcher.Config{Keys: keys, Stdout: &stdout, Stderr: os.Stderr, Log: &log})
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s", err, log.String())
	}
	m, _ := job.Load(mf, launcher.Specs())
	if res.Digest != m.DigestString() || len(res.Outputs) != 2 {
		t.Fatalf("result %+v", res)
	}
	if stdout.String() != "stdout passes through\n" {
		t.Fatalf("stdout %q", stdout.String())
	}
	got := decryptFrom(t, filepath.Join(e.outDir, "greeting.txt.ppml"), e.key)
	if want := "hello alice\nhello bob\nhello " + e.markers[0] + "\n"; string(got) != want {
		t.Fatalf("greeting %q, want %q", got, want)
	}
	stats := decryptFrom(t, filepath.Join(e.outDir, "stats.json.ppml"), e.key)
	if want := `{"cwd_is_private": true, "files": ["a.csv", "sub/b.csv"], "rows": 6}`; string(stats) != want {
		t.Fatalf("stats %s, want %s", stats, want)
	}
	// launcher.Output headers carry the content type and the output key.
	f, _ := os.Open(filepath.Join(e.outDir, "stats.json.ppml"))
	h, err := envelope.ReadHeader(f)
	f.Close()
	if err != nil || h.ContentType != envelope.TypeJSON || h.KeyRef != e.key.Ref() {
		t.Fatalf("output header %+v, %v", h, err)
	}
	if strings.Contains(log.String(), e.markers[0]) {
		t.Fatal("launcher log holds plaintext")
	}
	e.scan(t)
	// Nothing but the two outputs in the output directory: no temporaries left.
	ents, _ := os.ReadDir(e.outDir)
	if len(ents) != 2 {
		t.Fatalf("output directory holds %d entries", len(ents))
	}
}

func TestFailedProgramLeavesNothing(t *testing.T) {
	needPython(t)
	for _, c := range []struct {
		name, tail string
		code       int
	}{
		{"exit3", "raise SystemExit(3)", 3},
		{"crash", "os.kill(os.getpid(), signal.SIGSEGV)", 128 + int(syscall.SIGSEGV)},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newJobEnv(t)
			// The program copies its plaintext input to the output and to a
			// file in its working directory, then fails.
			prog := `import os, signal
data = open(os.environ["PPML_INPUT_PEOPLE"]).read()
open(os.environ["PPML_OUTPUT_GREETING"], "w").write(data)
open("scratch.txt", "w").write(data)
` + c.tail
			mf := e.manifest(t, "fails", prog, "")
			keys, _ := launcher.NewLocalKeys(e.keyPath)
			_, err := runJob(context.Background(), mf, launcher.Config{Keys: keys})
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Code != c.code {
				t.Fatalf("want exit %d, got %v", c.code, err)
			}
			ents, _ := os.ReadDir(e.outDir)
			if len(ents) != 0 {
				t.Fatalf("output directory holds %v", ents)
			}
			e.scan(t)
		})
	}
}

func TestManifestErrorsBeforeKeys(t *testing.T) {
	e := newJobEnv(t)
	keys, _ := launcher.NewLocalKeys(e.keyPath)
	rk := &recordingKeys{KeySource: keys}
	for name, body := range map[string]string{
		"unknown field":        "name: x\nengine: exec\nbogus: 1\nparameters:\n  command: [true]\n",
		"missing input":        "name: x\nengine: exec\ninputs:\n  a: nope.ppml\nparameters:\n  command: [true]\n",
		"two outputs one path": "name: x\nengine: exec\noutputs:\n  a: {path: out/o, key: file:owner.key}\n  b: {path: out//o, key: file:owner.key}\nparameters:\n  command: [true]\n",
	} {
		mf := filepath.Join(e.dir, "bad.yaml")
		writeFile(t, mf, body)
		_, err := runJob(context.Background(), mf, launcher.Config{Keys: rk})
		var je *job.Error
		if !errors.As(err, &je) {
			t.Fatalf("%s: want a manifest error, got %v", name, err)
		}
	}
	if rk.releases != 0 {
		t.Fatalf("key source asked %d times for invalid manifests", rk.releases)
	}
}

func TestJobChangedByOneByteIsDenied(t *testing.T) {
	needPython(t)
	e := newJobEnv(t)
	sentinel := filepath.Join(e.dir, "ran")
	prog := helloProgram + "\nopen(os.environ[\"SENTINEL\"], \"w\").write(\"ran\")"
	extra := "  env: [SENTINEL=" + sentinel + "]\n"
	mf := e.manifest(t, "hello", prog, extra)
	m, err := job.Load(mf, launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	lk, _ := launcher.NewLocalKeys(e.keyPath)
	keys := &digestPolicyKeys{LocalKeys: lk, allowed: m.Digest()}
	if _, err := runJob(context.Background(), mf, launcher.Config{Keys: keys}); err != nil {
		t.Fatalf("allowed job: %v", err)
	}
	for _, f := range []string{sentinel, filepath.Join(e.outDir, "greeting.txt.ppml"), filepath.Join(e.outDir, "stats.json.ppml")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	// One byte of the program changes: "hello" becomes "hellp".
	e.manifest(t, "hello", strings.Replace(prog, "hello %s", "hellp %s", 1), extra)
	_, err = runJob(context.Background(), mf, launcher.Config{Keys: keys})
	var de *launcher.DeniedError
	if !errors.As(err, &de) || len(de.Denials) != 3 || de.Denials[0].Rule != "job_digest" {
		t.Fatalf("changed job: want denial, got %v", err)
	}
	if !strings.Contains(err.Error(), "local:"+e.key.ID()) || !strings.Contains(err.Error(), "rule job_digest") {
		t.Fatalf("denial does not name the key and rule: %v", err)
	}
	if _, err := os.Stat(sentinel); err == nil {
		t.Fatal("the program ran although its keys were denied")
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 0 {
		t.Fatalf("outputs written: %v", ents)
	}
	e.scan(t)
}

func TestPinnedKeyMismatch(t *testing.T) {
	e := newJobEnv(t)
	other := newKey(t, filepath.Join(e.dir, "other.key"))
	mf := filepath.Join(e.dir, "pin.yaml")
	writeFile(t, mf, "name: x\nengine: exec\ninputs:\n  people:\n    path: people.txt.ppml\n    key: local:"+other.ID()+"\nparameters:\n  command: [true]\n")
	keys, _ := launcher.NewLocalKeys(e.keyPath, filepath.Join(e.dir, "other.key"))
	rk := &recordingKeys{KeySource: keys}
	_, err := runJob(context.Background(), mf, launcher.Config{Keys: rk})
	if err == nil || !strings.Contains(err.Error(), "the job pins local:"+other.ID()) || rk.releases != 0 {
		t.Fatalf("pinned key mismatch: %v (releases %d)", err, rk.releases)
	}
	// file: pins compare by key id.
	writeFile(t, mf, "name: x\nengine: exec\ninputs:\n  people:\n    path: people.txt.ppml\n    key: file:owner.key\nparameters:\n  command: [true]\n")
	if _, err := runJob(context.Background(), mf, launcher.Config{Keys: rk}); err != nil {
		t.Fatalf("file: pin of the right key: %v", err)
	}
}

func TestMissingLocalKey(t *testing.T) {
	e := newJobEnv(t)
	mf := filepath.Join(e.dir, "nokey.yaml")
	writeFile(t, mf, "name: x\nengine: exec\ninputs:\n  people: people.txt.ppml\nparameters:\n  command: [true]\n")
	keys, _ := launcher.NewLocalKeys()
	_, err := runJob(context.Background(), mf, launcher.Config{Keys: keys})
	if err == nil || !strings.Contains(err.Error(), "needs local key "+e.key.ID()) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestStoppedRunLeavesNothing(t *testing.T) {
	needPython(t)
	e := newJobEnv(t)
	pidFile := filepath.Join(e.dir, "pid")
	prog := `import os, time
data = open(os.environ["PPML_INPUT_PEOPLE"]).read()
open(os.environ["PPML_OUTPUT_GREETING"], "w").write(data)
open(os.environ["PIDFILE"], "w").write(str(os.getpid()))
time.sleep(60)`
	mf := e.manifest(t, "sleeps", prog, "  env: [PIDFILE="+pidFile+"]\n")
	keys, _ := launcher.NewLocalKeys(e.keyPath)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		for {
			if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 {
				cancel(errors.New("test stops the job"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t0 := time.Now()
	_, err := runJob(ctx, mf, launcher.Config{Keys: keys, Grace: 2 * time.Second})
	if !errors.Is(err, exec.ErrStopped) {
		t.Fatalf("want stopped, got %v", err)
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Fatalf("stopping took %v", d)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(string(b))
	if pid <= 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("child %d still exists", pid)
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 0 {
		t.Fatalf("outputs written: %v", ents)
	}
	e.scan(t)
}

// A kms:// output key needs a key service: with local key files only, the
// run is refused before anything happens.
func TestKMSOutputNeedsKeyService(t *testing.T) {
	e := newJobEnv(t)
	mf := filepath.Join(e.dir, "kmsout.yaml")
	writeFile(t, mf, "name: x\nengine: exec\noutputs:\n  o: {path: out/o.ppml, key: kms://kms.example.org/owner.results}\nparameters:\n  command: [true]\n")
	keys, _ := launcher.NewLocalKeys(e.keyPath)
	if _, err := runJob(context.Background(), mf, launcher.Config{Keys: keys}); err == nil || !strings.Contains(err.Error(), "give --server") {
		t.Fatalf("kms output with local keys: %v", err)
	}
	kk := &launcher.KMSKeys{Local: keys}
	if _, err := runJob(context.Background(), mf, launcher.Config{Keys: kk}); err == nil || !strings.Contains(err.Error(), "no key service was given") {
		t.Fatalf("kms output without a client: %v", err)
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 0 {
		t.Fatalf("outputs written: %v", ents)
	}
}

// The leak scan must be able to fail: plant markers where a careless run
// would leave them and check that each is found.
func TestMarkerScanFindsLeaks(t *testing.T) {
	e := newJobEnv(t)
	mk := marker(t)
	shm, err := os.CreateTemp("/dev/shm", "leak-*")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.Remove(shm.Name())
	shm.WriteString("x" + mk + "y")
	shm.Close()
	writeFile(t, filepath.Join(os.Getenv("TMPDIR"), "deep", "leak"), mk)
	writeFile(t, filepath.Join(e.outDir, mk+".txt"), "name only")
	found := findMarkers(e.start, []string{e.dir, os.Getenv("TMPDIR")}, mk)
	if len(found) != 3 {
		t.Fatalf("scan found %d of 3 planted leaks: %v", len(found), found)
	}
}
