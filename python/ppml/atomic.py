"""Atomic file output (Go: package atomicfile): data goes to a temporary file in the target's
directory, which is fsynced and renamed into place on commit; on any error or abort the
temporary file is removed and the target is left as it was."""
import errno
import os
import stat
import tempfile


class AtomicFile:
    """A pending atomic write of ``path``. Use as a context manager: leaving the block normally
    commits, an exception aborts. Unless ``overwrite``, an existing target is an error (checked
    at creation and again, race-free, at the rename)."""

    def __init__(self, path, overwrite=False, mode=0o600):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        d = os.path.dirname(self.path) or "."
        if not os.path.exists(d):
            raise FileNotFoundError(errno.ENOENT, f"output directory {d} does not exist")
        if not os.path.isdir(d):
            raise NotADirectoryError(errno.ENOTDIR, f"output directory {d} is not a directory")
        if not overwrite and os.path.lexists(self.path):
            raise FileExistsError(errno.EEXIST, f"output {self.path} already exists")
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, f"output {self.path} is a directory")
            if not stat.S_ISREG(st.st_mode):
                # Renaming over a device or FIFO would replace the node itself.
                raise OSError(errno.EINVAL, f"output {self.path} is not a regular file: outputs are "
                                            "written by atomically replacing a regular file")
        fd, self._tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".tmp-", dir=d)
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            os.unlink(self._tmp)
            raise
        self._f = os.fdopen(fd, "wb", buffering=0)
        self.done = False

    def write(self, b):
        if self.done:
            raise ValueError(f"write {self.path}: file already committed or aborted")
        mv = memoryview(b)
        while mv:
            n = self._f.write(mv)
            mv = mv[n:]
        return len(b)

    def commit(self):
        if self.done:
            return
        self.done = True
        try:
            os.fsync(self._f.fileno())
            self._f.close()
            if self.overwrite:
                os.replace(self._tmp, self.path)
            else:
                # link fails when the target appeared meanwhile (Go uses RENAME_NOREPLACE).
                try:
                    os.link(self._tmp, self.path)
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                        raise
                    # A file system without hard links: check, then rename (racy, as a last resort).
                    if os.path.lexists(self.path):
                        raise FileExistsError(errno.EEXIST, f"output {self.path} already exists") from None
                    os.rename(self._tmp, self.path)
                else:
                    os.unlink(self._tmp)
        except BaseException:
            self._cleanup()
            raise
        try:
            dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)  # the rename is durable only once the directory is synced
            finally:
                os.close(dfd)
        except OSError:
            pass

    def abort(self):
        if not self.done:
            self.done = True
            self._cleanup()

    def _cleanup(self):
        try:
            self._f.close()
        except OSError:
            pass
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
