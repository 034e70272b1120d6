// Package memfd holds decrypted data in anonymous memory files (memfd) so
// engines and child processes can open a path, /proc/self/fd/N, without any
// plaintext reaching a disk.
//
// The descriptor is created with MFD_CLOEXEC, so a child started with exec
// does not inherit it by accident. To hand one to a child, put File.OSFile()
// in exec.Cmd.ExtraFiles (AttachTo does that): the child then sees it as
// descriptor 3+i and opens /proc/self/fd/(3+i).
//
// # Without memfd_create (Gramine)
//
// Gramine has no memfd_create (ENOSYS). There a File is a regular file on
// an in-memory file system instead: the directory named by $PPML_MEMFS,
// which the generated Gramine manifest sets to its tmpfs mount (Gramine
// keeps tmpfs files in enclave memory, invisible to the host), or else
// /dev/shm when it is a tmpfs. When neither exists New fails rather than
// put plaintext on a disk. Such a file has a real path (Path returns it),
// mode 0600, and is removed by Close. Seal cannot use file seals there; it
// makes the file read-only, which inside an enclave no other process can
// change (each Gramine process has its own tmpfs).
package memfd

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/envelope"
)

// File is an open memfd, or a file on an in-memory file system where
// memfd_create is missing.
type File struct {
	f *os.File
	// path is the tmpfs file's path; "" for a memfd.
	path string
}

// memfdCreate is unix.MemfdCreate; tests make it answer ENOSYS.
var memfdCreate = unix.MemfdCreate

// EnvMemFS names the in-memory directory used when memfd_create is missing.
const EnvMemFS = "PPML_MEMFS"

// New creates an empty, writable in-memory file; name shows in /proc for
// debugging only.
func New(name string) (*File, error) {
	fd, err := memfdCreate("ppml:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err == unix.ENOSYS {
		return newTmpfs()
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return &File{f: os.NewFile(uintptr(fd), "memfd:"+name)}, nil
}

// NewTmpfs is New without memfd_create, whatever the platform offers: a
// fresh 0600 file in MemFS(). It is what New falls back to in Gramine; tests
// use it to take that route on Linux.
func NewTmpfs() (*File, error) { return newTmpfs() }

// newTmpfs is New without memfd_create: a fresh 0600 file in MemFS().
func newTmpfs() (*File, error) {
	dir, err := MemFS()
	if err != nil {
		return nil, err
	}
	// os.CreateTemp opens with O_CLOEXEC and mode 0600.
	f, err := os.CreateTemp(dir, "ppml-mem-")
	if err != nil {
		return nil, fmt.Errorf("in-memory file: %w", err)
	}
	return &File{f: f, path: f.Name()}, nil
}

// MemFS is the in-memory directory that holds Files when memfd_create is
// missing: $PPML_MEMFS (trusted as given: in Gramine the manifest fixes it
// to a tmpfs mount, and Gramine's statfs does not report tmpfs), else
// /dev/shm if it is a writable tmpfs.
func MemFS() (string, error) {
	if d := os.Getenv(EnvMemFS); d != "" {
		return d, nil
	}
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
		return "/dev/shm", nil
	}
	return "", fmt.Errorf("memfd_create is not available and there is no in-memory file system for decrypted data: set %s to a tmpfs directory (the Gramine manifest does)", EnvMemFS)
}

// Decrypt decrypts the envelope at path into a new, sealed memfd. The
// plaintext exists only in memory; on any error nothing is returned. A
// regular file is decrypted with positional reads and writes on every core
// (envelope.File.WriteAllAt), other files as a stream.
func Decrypt(path string, kr envelope.KeyResolver) (*File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return DecryptReader(src, path, kr)
	}
	// Open checks the key, the layout and the final segment first.
	ef, err := envelope.Open(src, st.Size(), kr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer ef.Close()
	m, err := New(path)
	if err != nil {
		return nil, err
	}
	// Reserve the size up front: one allocation, and ENOSPC (memory limits)
	// shows before decrypting.
	if err := m.f.Truncate(ef.Size()); err != nil {
		m.Close()
		return nil, fmt.Errorf("size memfd for %s: %w", path, err)
	}
	if _, err := ef.WriteAllAt(m.f); err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.Seal(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// DecryptReader is Decrypt from an open stream; name labels the memfd.
func DecryptReader(src io.Reader, name string, kr envelope.KeyResolver) (*File, error) {
	m, err := New(name)
	if err != nil {
		return nil, err
	}
	r, err := envelope.NewReader(src, kr)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if h := r.Header(); h.LengthKnown() && h.PlaintextLength < 1<<40 {
		// Reserve the size up front: one allocation, and ENOSPC (memory
		// limits) shows before decrypting.
		if err := m.f.Truncate(int64(h.PlaintextLength)); err != nil {
			m.Close()
			return nil, fmt.Errorf("size memfd for %s: %w", name, err)
		}
	}
	if _, err := r.WriteTo(&offsetWriter{f: m.f}); err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := m.Seal(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// Seal makes the memfd read-only for everyone (F_SEAL_WRITE, SHRINK, GROW,
// SEAL), so a consumer cannot alter an input others also read.
func (m *File) Seal() error {
	if m.path != "" {
		if err := m.f.Chmod(0o400); err != nil {
			return fmt.Errorf("seal in-memory file: %w", err)
		}
		return nil
	}
	_, err := unix.FcntlInt(m.f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
	if err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	return nil
}

// Path is /proc/self/fd/N for a memfd (the tmpfs file's own path without
// memfd_create), valid in this process while the File is open. Each open of
// it starts at offset 0 with its own file position.
func (m *File) Path() string {
	if m.path != "" {
		return m.path
	}
	return "/proc/self/fd/" + strconv.Itoa(int(m.f.Fd()))
}

// IsMemfd reports whether the file is a memfd, which a child process can
// share through an inherited descriptor. It is false for the tmpfs file
// used without memfd_create: in Gramine every process has its own tmpfs, so
// a child must be given the content itself (engine/exec streams it).
func (m *File) IsMemfd() bool { return m.path == "" }

// OSFile returns the descriptor, e.g. for exec.Cmd.ExtraFiles.
func (m *File) OSFile() *os.File { return m.f }

// AttachTo passes the memfd to cmd (which must not have started) and
// returns the path under which the child can open it.
func (m *File) AttachTo(cmd *exec.Cmd) string {
	cmd.ExtraFiles = append(cmd.ExtraFiles, m.f)
	return "/proc/self/fd/" + strconv.Itoa(2+len(cmd.ExtraFiles))
}

// Size is the current length of the memfd.
func (m *File) Size() (int64, error) {
	st, err := m.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Close releases the memory (once no child holds the descriptor).
func (m *File) Close() error {
	err := m.f.Close()
	if m.path != "" {
		if rerr := os.Remove(m.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}
