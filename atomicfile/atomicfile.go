// Package atomicfile writes a file so that readers see either the old
// content or the complete new content, never a part: data goes to a temporary
// file in the same directory, which is synced and renamed over the target on
// Commit. On any error, or on Abort, the temporary file is removed.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrExists is returned when the target exists and overwriting was not allowed.
var ErrExists = fs.ErrExist

// Options for Create.
type Options struct {
	Perm      os.FileMode // 0600 when zero
	Overwrite bool        // replace an existing target
}

// File is a pending atomic write. Use Commit (or Close) to publish it and
// defer Abort to clean up on every other path.
type File struct {
	f         *os.File
	tmp, path string
	overwrite bool
	done      bool
	err       error
	errMu     sync.Mutex // guards err against concurrent WriteAt calls
}

// Create starts an atomic write of path. It fails at once when the target's
// directory is missing or, unless opts.Overwrite, the target exists.
func Create(path string, opts Options) (*File, error) {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("output directory %s does not exist", dir)
	case err != nil:
		return nil, fmt.Errorf("output directory: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("output directory %s is not a directory", dir)
	}
	if !opts.Overwrite {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("output %s already exists: %w", path, ErrExists)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return nil, fmt.Errorf("output %s is a directory", path)
		case !fi.Mode().IsRegular():
			// Renaming over a device, FIFO or socket would replace the node
			// itself (as root, /dev/null becomes a regular file holding the
			// output), so only regular files are ever replaced.
			return nil, fmt.Errorf("output %s is not a regular file (%s): outputs are written by atomically replacing a regular file; write to standard output (-) instead", path, fileKind(fi.Mode()))
		}
	}
	perm := opts.Perm
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("set mode of %s: %w", f.Name(), err)
	}
	return &File{f: f, tmp: f.Name(), path: path, overwrite: opts.Overwrite}, nil
}

// WriteFile writes data to path as one atomic output: the counterpart of
// os.WriteFile for every file ppml produces. On any error the target is left
// as it was and no temporary file remains.
func WriteFile(path string, data []byte, opts Options) error {
	f, err := Create(path, opts)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// Name is the target path.
func (a *File) Name() string { return a.path }

// Write writes to the temporary file. After a failed write, Commit aborts.
func (a *File) Write(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if a.done {
		return 0, fmt.Errorf("write %s: %w", a.path, os.ErrClosed)
	}
	n, err := a.f.Write(p)
	if err != nil {
		a.err = fmt.Errorf("write %s: %w", a.path, unwrapPathError(err))
	}
	return n, a.err
}

// WriteAt writes to the temporary file at offset off; it may be called from
// several goroutines at once (not together with Write, Commit or Abort).
// After a failed write, Commit aborts.
func (a *File) WriteAt(p []byte, off int64) (int, error) {
	a.errMu.Lock()
	err := a.err
	a.errMu.Unlock()
	if err != nil {
		return 0, err
	}
	if a.done {
		return 0, fmt.Errorf("write %s: %w", a.path, os.ErrClosed)
	}
	n, err := a.f.WriteAt(p, off)
	if err != nil {
		a.errMu.Lock()
		if a.err == nil {
			a.err = fmt.Errorf("write %s: %w", a.path, unwrapPathError(err))
		}
		err = a.err
		a.errMu.Unlock()
	}
	return n, err
}

// Commit syncs the data, renames the temporary file to the target and syncs
// the directory. If anything fails, the temporary file is removed and the
// target is left as it was.
func (a *File) Commit() error {
	if a.done {
		return a.err
	}
	a.done = true
	if a.err != nil {
		a.cleanup()
		return a.err
	}
	if err := a.f.Sync(); err != nil {
		a.err = fmt.Errorf("sync %s: %w", a.path, unwrapPathError(err))
		a.cleanup()
		return a.err
	}
	if err := a.f.Close(); err != nil {
		a.err = fmt.Errorf("close %s: %w", a.path, unwrapPathError(err))
		os.Remove(a.tmp)
		return a.err
	}
	if err := a.rename(); err != nil {
		a.err = err
		os.Remove(a.tmp)
		return a.err
	}
	if d, err := os.Open(filepath.Dir(a.path)); err == nil {
		// The rename is durable only once the directory is synced.
		d.Sync()
		d.Close()
	}
	return nil
}

func (a *File) rename() error {
	if a.overwrite {
		if err := os.Rename(a.tmp, a.path); err != nil {
			return fmt.Errorf("rename into place: %w", err)
		}
		return nil
	}
	// RENAME_NOREPLACE closes the race between the existence check in Create
	// and now; fall back to link+unlink where the filesystem lacks it.
	err := unix.Renameat2(unix.AT_FDCWD, a.tmp, unix.AT_FDCWD, a.path, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err = os.Link(a.tmp, a.path); err == nil {
			os.Remove(a.tmp)
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST) || errors.Is(err, fs.ErrExist):
		return fmt.Errorf("output %s already exists: %w", a.path, ErrExists)
	default:
		return fmt.Errorf("rename into place %s: %w", a.path, err)
	}
}

// Close is Commit: it publishes the file unless a write failed or Abort ran.
func (a *File) Close() error { return a.Commit() }

// Abort discards the temporary file. It is a no-op after Commit, so it can be
// deferred.
func (a *File) Abort() error {
	if a.done {
		return nil
	}
	a.done = true
	if a.err == nil {
		a.err = errors.New("aborted")
	}
	a.cleanup()
	return nil
}

func (a *File) cleanup() {
	a.f.Close()
	os.Remove(a.tmp)
}

// fileKind names a non-regular file type for error messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	default:
		return "special file"
	}
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err // the temporary name means nothing to the user
	}
	return err
}
