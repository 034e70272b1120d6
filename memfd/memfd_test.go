package memfd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/envelope"
)

func setup(t *testing.T, n int) (string, []byte, *envelope.LocalKey) {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	k, err := envelope.NewLocalKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, n)
	rand.Read(pt)
	path := filepath.Join(t.TempDir(), "data.ppml")
	w, err := envelope.CreateFile(path, k, &envelope.Options{Size: int64(n), SizeKnown: true, SegmentSize: 4096}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Write(pt)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path, pt, k
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestDecryptIntoMemfd(t *testing.T) {
	path, pt, k := setup(t, 100000)
	m, err := Decrypt(path, k)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := os.ReadFile(m.Path())
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("read %s: %v, equal=%v", m.Path(), err, bytes.Equal(got, pt))
	}
	// Opening the path twice gives independent readers from offset 0.
	again, err := os.ReadFile(m.Path())
	if err != nil || !bytes.Equal(again, pt) {
		t.Fatal("second read differs")
	}
	target, _ := os.Readlink(m.Path())
	if !bytes.HasPrefix([]byte(target), []byte("/memfd:ppml:")) {
		t.Fatalf("%s links to %q, not a memfd", m.Path(), target)
	}
	// Sealed: nobody can change it.
	f, err := os.OpenFile(m.Path(), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("x"))
		f.Close()
	}
	if err == nil {
		t.Fatal("wrote to a sealed memfd")
	}
}

func TestChildProcessInheritsOnlyWhenAttached(t *testing.T) {
	path, pt, k := setup(t, 50000)
	m, err := Decrypt(path, k)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cmd := exec.Command("cat", "PLACEHOLDER")
	cmd.Args[1] = m.AttachTo(cmd)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, pt) {
		t.Fatalf("child read %d bytes: %v", len(out), err)
	}
	// Without ExtraFiles the CLOEXEC descriptor is not in the child.
	if err := exec.Command("cat", m.Path()).Run(); err == nil {
		t.Fatalf("child opened %s without it being passed", m.Path())
	}
}

func TestCloseReleasesAndFailureLeavesNothing(t *testing.T) {
	path, _, k := setup(t, 10000)
	before := openFDs(t)
	m, err := Decrypt(path, k)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Path()
	m.Close()
	if target, err := os.Readlink(p); err == nil && bytes.Contains([]byte(target), []byte("memfd:ppml")) {
		t.Fatalf("%s still open after Close", p)
	}
	// A tampered file: error, and no descriptor leaks.
	data, _ := os.ReadFile(path)
	data[len(data)-1] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.ppml")
	os.WriteFile(bad, data, 0o600)
	if _, err := Decrypt(bad, k); err == nil {
		t.Fatal("tampered file decrypted")
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open descriptors %d -> %d", before, after)
	}
}

func TestWritableMemfd(t *testing.T) {
	m, err := New("out")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.WriteFile(m.Path(), []byte("result"), 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Size(); n != 6 {
		t.Fatalf("size %d", n)
	}
}

// TestDecryptManySegments: a file of several segments decrypts on every
// core into the memfd; one with a modified middle segment fails and leaks
// no descriptor.
func TestDecryptManySegments(t *testing.T) {
	path, pt, k := setup(t, 20*4096+7) // 4 KiB segments
	m, err := Decrypt(path, k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(m.Path())
	m.Close()
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("read: %v, equal=%v", err, bytes.Equal(got, pt))
	}
	before := openFDs(t)
	data, _ := os.ReadFile(path)
	data[len(data)-10*(4096+16)] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.ppml")
	os.WriteFile(bad, data, 0o600)
	if _, err := Decrypt(bad, k); !errors.Is(err, envelope.ErrAuth) || !strings.Contains(err.Error(), "segment 10:") {
		t.Fatalf("tampered middle segment: %v", err)
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open descriptors %d -> %d", before, after)
	}
}

// Without memfd_create (Gramine), a File is a file in $PPML_MEMFS that
// works the same through its path and is gone after Close.
func TestFallbackWithoutMemfdCreate(t *testing.T) {
	memfdCreate = func(string, int) (int, error) { return -1, unix.ENOSYS }
	defer func() { memfdCreate = unix.MemfdCreate }()
	dir := t.TempDir()
	t.Setenv(EnvMemFS, dir)
	path, pt, k := setup(t, 50000)
	m, err := Decrypt(path, k)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(m.Path()) != dir {
		t.Fatalf("path %s is not in %s", m.Path(), dir)
	}
	got, err := os.ReadFile(m.Path())
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("read %s: %v", m.Path(), err)
	}
	if st, err := os.Stat(m.Path()); err != nil || st.Mode().Perm() != 0o400 {
		t.Fatalf("sealed file mode: %v %v", st.Mode(), err)
	}
	// A child reads it through its descriptor, as the exec engine hands it.
	cmd := exec.Command("/bin/sh", "-c", `cat "$1"`, "sh")
	cmd.Args = append(cmd.Args, m.AttachTo(cmd))
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, pt) {
		t.Fatalf("child read: %v (%d bytes)", err, len(out))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d files left in the in-memory directory", len(ents))
	}
	t.Setenv(EnvMemFS, "")
	if _, err := MemFS(); err != nil && !strings.Contains(err.Error(), EnvMemFS) {
		t.Fatalf("MemFS error does not name %s: %v", EnvMemFS, err)
	}
}
