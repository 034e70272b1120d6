package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/atomicfile/atomicfiletest"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	f, err := Create(p, Options{Perm: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("hello"))
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("target visible before Commit")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello" {
		t.Fatalf("content %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("leftovers %v", got)
	}
	f.Abort() // no-op after commit
	if _, err := os.Stat(p); err != nil {
		t.Fatal("Abort after Commit removed the file")
	}
}

func TestNoClobberAndOverwrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old"), 0o600)
	if _, err := Create(p, Options{}); !errors.Is(err, ErrExists) {
		t.Fatalf("existing target: %v", err)
	}
	// Appearing between Create and Commit is caught too.
	os.Remove(p)
	f, err := Create(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	os.WriteFile(p, []byte("raced"), 0o600)
	if err := f.Commit(); !errors.Is(err, ErrExists) {
		t.Fatalf("race: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "raced" {
		t.Fatal("raced file replaced")
	}
	f, _ = Create(p, Options{Overwrite: true})
	f.Write([]byte("new"))
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatal("overwrite")
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("leftovers %v", got)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "out"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	f.Abort()
	if err := f.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("leftovers %v", got)
	}
}

func TestOutputDirectoryMissing(t *testing.T) {
	_, err := Create(filepath.Join(t.TempDir(), "no", "such", "out"), Options{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), filepath.Join("no", "such")) {
		t.Fatalf("%v", err)
	}
}

// TestDiskFull writes past the end of a 1 MiB tmpfs: the write fails with
// ENOSPC, nothing is left behind and an existing target is untouched.
func TestDiskFull(t *testing.T) {
	dir := MountSmallTmpfs(t)
	p := filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old"), 0o600)
	f, err := Create(p, Options{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = f.Write(chunk)
	}
	if werr == nil || !strings.Contains(werr.Error(), "no space left") {
		t.Fatalf("write error %v", werr)
	}
	if err := f.Close(); err == nil {
		t.Fatal("Close committed after a failed write")
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("leftovers %v", got)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatal("target changed")
	}
}

// MountSmallTmpfs mounts a 1 MiB tmpfs for the test, or skips when mounting
// is not permitted (not root, or no CAP_SYS_ADMIN in a container).
func MountSmallTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v: %s); the size-limited writer tests still cover disk full", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// Renaming over a device or FIFO replaces the node itself: as root,
// `-o /dev/null --force` would turn /dev/null into a regular file holding the
// output. Special files are refused, with or without Overwrite, and left alone.
func TestRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	targets := map[string]string{fifo: "named pipe"}
	if os.Geteuid() == 0 {
		dev := filepath.Join(dir, "null")
		if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
			targets[dev] = "character device"
		}
	}
	for path, kind := range targets {
		for _, overwrite := range []bool{false, true} {
			f, err := Create(path, Options{Overwrite: overwrite})
			if err == nil {
				f.Abort()
				t.Fatalf("%s (overwrite=%v): Create succeeded", kind, overwrite)
			}
			if overwrite && !strings.Contains(err.Error(), kind) {
				t.Errorf("%s: error %q does not name the file kind", kind, err)
			}
			fi, err := os.Lstat(path)
			if err != nil || fi.Mode().IsRegular() {
				t.Fatalf("%s was replaced: %v %v", kind, fi, err)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(targets) {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// TestWriteFileFailureKeepsOld makes the write fail part-way (file size
// limit, as a full disk or quota would): the old target stays as it was and
// no temporary file remains.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	if !atomicfiletest.Child(t) {
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := WriteFile(p, []byte("old"), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), Options{}); !errors.Is(err, ErrExists) {
		t.Fatalf("WriteFile over an existing file without Overwrite: %v", err)
	}
	atomicfiletest.LimitFileSize(t, 1024)
	err := WriteFile(p, bytes.Repeat([]byte("x"), 4096), Options{Overwrite: true})
	if err == nil || !strings.Contains(err.Error(), "file too large") || !strings.Contains(err.Error(), p) {
		t.Fatalf("write past the file size limit: %v", err)
	}
	atomicfiletest.Unchanged(t, p, []byte("old"))
	atomicfiletest.NoTemporaries(t, dir)
	// Within the limit the same call succeeds.
	if err := WriteFile(p, []byte("new"), Options{Overwrite: true, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	atomicfiletest.Unchanged(t, p, []byte("new"))
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode())
	}
}
