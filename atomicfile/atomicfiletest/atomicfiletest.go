// Package atomicfiletest helps test that writers built on atomicfile lose
// nothing when a write fails: it makes writes fail part-way, the way a full
// disk or a quota does, without root or a special file system.
package atomicfiletest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv marks the child process Child starts.
const childEnv = "PPML_ATOMICFILETEST_CHILD"

// Child runs the calling test again in a child process, so that
// LimitFileSize can act on the whole process without touching the test
// framework's own files. It returns true in the child, where the test body
// runs, and false in the parent, which has then reported the child's result:
//
//	if !atomicfiletest.Child(t) {
//		return
//	}
//	... set up, then:
//	atomicfiletest.LimitFileSize(t, 1024)
func Child(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	var pattern []string
	for _, part := range strings.Split(t.Name(), "/") {
		pattern = append(pattern, "^"+regexp.QuoteMeta(part)+"$")
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(pattern, "/"), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("test in a child process: %v\n%s", err, out)
	}
	return false
}

// LimitFileSize makes every later write that would grow a regular file past
// n bytes fail with EFBIG (RLIMIT_FSIZE; the Go runtime ignores the SIGXFSZ
// that comes with it), the way a full disk or a quota makes a write fail
// part-way. The limit is process-wide, so it is only allowed in a Child.
func LimitFileSize(t *testing.T, n int64) {
	t.Helper()
	if os.Getenv(childEnv) != t.Name() {
		t.Fatal("LimitFileSize outside atomicfiletest.Child")
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	lim.Cur = uint64(n)
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
}

// NoTemporaries fails the test when dir holds a temporary file atomicfile
// left behind (".NAME.tmp-*").
func NoTemporaries(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", filepath.Join(dir, e.Name()))
		}
	}
}

// Unchanged fails the test unless path holds exactly want.
func Unchanged(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s changed after a failed write: %d bytes, want the old %d", path, len(got), len(want))
	}
}
