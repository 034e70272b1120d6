"""Opening, creating, encrypting, decrypting and inspecting envelope files."""
import io
import os
import stat

from . import header as hdr
from . import keyref
from . import keys as keymod
from .atomic import AtomicFile
from .errors import EnvelopeError
from .reader import EnvelopeFile, EnvelopeStream
from .writer import EnvelopeWriter

_CHUNK = 8 << 20


def _with_path(e, path):
    if path and e.args and isinstance(e.args[0], str) and not e.args[0].startswith(f"{path}: "):
        e.args = (f"{path}: {e.args[0]}",) + e.args[1:]
    e.path = path
    return e


def open(file, mode="rb", *, keys=None, encoding=None, errors=None, newline=None, workers=None):
    """Open an envelope for reading, like the built-in ``open``.

    ``file`` is a path or a binary file object; ``keys`` a key, a key file path (a local key or
    a recipient private key, as ``ppml key generate [--recipient]`` writes them), a
    ``kms://HOST[:PORT]/KEY`` reference, or a list of them (the first that holds the file's key
    is used). ``mode`` is ``"rb"`` (a seekable binary file object; a non-seekable source such
    as a pipe gives a sequential one) or ``"r"``/``"rt"`` (text, ``encoding`` default UTF-8).
    The key, the header and the final segment are checked before this returns; every read
    returns only authenticated plaintext. Errors are the EnvelopeError subclasses of
    ``ppml.errors``, one per failure kind, with the path in the message.
    """
    if mode not in ("r", "rt", "rb"):
        raise ValueError(f"mode {mode!r}: ppml.open reads (r, rt, rb); write with ppml.create")
    resolver = keymod.resolver(keys)
    f = None
    if _mlkem_identities(resolver):
        f, file = _open_mlkem(file, resolver)
    if f is not None:
        pass
    elif isinstance(file, (str, bytes, os.PathLike)):
        path = os.fsdecode(file)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise EnvelopeError(f"{path} is not a regular file")
            f = EnvelopeFile(fd, st.st_size, resolver, name=path, closefd=True, workers=workers)
        except EnvelopeError as e:
            os.close(fd)
            raise _with_path(e, path) from None
        except BaseException:
            os.close(fd)
            raise
    else:
        name = getattr(file, "name", None)
        try:
            seekable = file.seekable()
        except (AttributeError, ValueError):
            seekable = False
        try:
            if seekable:
                start = file.tell()
                size = file.seek(0, io.SEEK_END)
                file.seek(start)
                if start:
                    file = _Window(file, start)
                    size -= start
                f = EnvelopeFile(file, size, resolver, name=name, workers=workers)
            else:
                f = EnvelopeStream(file, resolver, name=name)
        except EnvelopeError as e:
            raise _with_path(e, name if isinstance(name, str) else None) from None
    if mode == "rb":
        return f
    return io.TextIOWrapper(_Buffered(f), encoding=encoding or "utf-8", errors=errors, newline=newline)


def _mlkem_identities(resolver):
    from .recipient import RecipientIdentity
    ks = resolver.keys if isinstance(resolver, keymod.Keyring) else [resolver]
    return [k for k in ks if isinstance(k, RecipientIdentity) and k.kem == keyref.KEM_MLKEM768X25519]


def _open_mlkem(file, resolver):
    """With an mlkem768x25519 identity among the keys: read the header here (its errors are the
    SDK's own), and if the file is encrypted to one of those identities, have ``ppml decrypt``
    decrypt it (ppml.mlkem). Returns (file object or None, the source for the ordinary path)."""
    from . import mlkem
    if isinstance(file, (str, bytes, os.PathLike)):
        path = os.fsdecode(file)
        with io.open(path, "rb") as src:
            st = os.fstat(src.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise EnvelopeError(f"{path} is not a regular file")
            h = _inspect(src, path)
        ident = _identity_for(h, resolver)
        if ident is None:
            return None, file
        try:
            return mlkem.decrypt(path, ident, h, name=path), file
        except EnvelopeError as e:
            raise _with_path(e, path) from None
    name = getattr(file, "name", None)
    name = name if isinstance(name, str) else None
    try:
        seekable = file.seekable()
    except (AttributeError, ValueError):
        seekable = False
    if seekable:
        start = file.tell()
        h = _inspect(file, name)
        file.seek(start)
        ident = _identity_for(h, resolver)
        if ident is None:
            return None, file
        prefix = b""
    else:
        rec = _Recorder(file)
        h = _inspect(rec, name)
        prefix = bytes(rec.seen)
        ident = _identity_for(h, resolver)
        if ident is None:
            return None, io.BufferedReader(_Prefixed(prefix, file))
    try:
        return mlkem.decrypt(file, ident, h, name=name, prefix=prefix), file
    except EnvelopeError as e:
        raise _with_path(e, name) from None


def _identity_for(h, resolver):
    ref = h.key_ref
    if ref.scheme != keyref.SCHEME_RECIPIENT or ref.kem != keyref.KEM_MLKEM768X25519:
        return None
    for k in _mlkem_identities(resolver):
        if k.key_id == ref.key_id:
            return k
    return None  # the ordinary path names the key the file needs and every key given


class _Recorder:
    """A source's read that remembers what it returned (the header, for a pipe)."""

    def __init__(self, f):
        self._f = f
        self.seen = bytearray()

    def read(self, n=-1):
        b = self._f.read(n)
        self.seen += b
        return b


class _Prefixed(io.RawIOBase):
    """Bytes already read from a pipe, then the rest of it."""

    def __init__(self, prefix, f):
        self._p = memoryview(prefix)
        self._f = f

    def readable(self):
        return True

    def readinto(self, buf):
        if self._p:
            n = min(len(buf), len(self._p))
            buf[:n] = self._p[:n]
            self._p = self._p[n:]
            return n
        b = self._f.read(len(buf))
        buf[:len(b)] = b
        return len(b)


def _writing_key(key, recipient):
    if (key is None) == (recipient is None):
        raise TypeError("give exactly one of key= (a local or key-service key) and recipient= (a public key)")
    if recipient is not None:
        from .recipient import Recipient
        return Recipient.from_key(recipient)
    return keymod.as_key(key)


def create(file, mode="wb", *, key=None, recipient=None, content_type="bytes", size=None, overwrite=False,
           segment_size=hdr.DEFAULT_SEGMENT_SIZE, encoding=None, errors=None, newline=None):
    """Create an envelope and return a writable file object.

    ``key`` is a LocalKey, a key file path, a ``kms://HOST[:PORT]/KEY`` reference (the data key
    comes from the key service, the header records the version that wrapped it) or a KMSKey.
    Instead of ``key``, ``recipient`` encrypts to a public key: its text (``ppml1…``), a public
    key file (``owner.pub``) or a Recipient; only the matching private key file opens the file.
    For a path the write is atomic: the file appears only when ``close()`` (or the end of a
    ``with`` block) succeeds; an exception, ``abort()`` or a writer that is never closed leaves
    nothing behind. An existing file is an error unless ``overwrite``. ``size`` records the
    plaintext length in the header (then exactly that many bytes must be written).
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"mode {mode!r}: ppml.create writes (w, wt, wb)")
    k = _writing_key(key, recipient)
    writer = EnvelopeWriter
    if getattr(k, "kem", None) == keyref.KEM_MLKEM768X25519:
        from .mlkem import CLIWriter
        if segment_size != hdr.DEFAULT_SEGMENT_SIZE:
            raise ValueError(f"segment size {segment_size}: files to an {keyref.KEM_MLKEM768X25519} recipient are "
                             f"written by the ppml command, in segments of {hdr.DEFAULT_SEGMENT_SIZE} bytes")
        k = getattr(k, "recipient", k)  # an identity encrypts to its own public key

        def writer(sink, key, content_type, segment_size, size, name):
            return CLIWriter(sink, key, content_type=content_type, size=size, name=name)
    if isinstance(file, (str, bytes, os.PathLike)):
        path = os.fsdecode(file)
        sink = AtomicFile(path, overwrite=overwrite)
        try:
            w = writer(sink, k, content_type=content_type, segment_size=segment_size, size=size, name=path)
        except BaseException:
            sink.abort()
            raise
    else:
        w = writer(file, k, content_type=content_type, segment_size=segment_size, size=size,
                   name=getattr(file, "name", None))
    if mode == "wb":
        return w
    return _TextWriter(w, encoding=encoding or "utf-8", errors=errors, newline=newline)


def encrypt_file(src, dst=None, *, key=None, recipient=None, content_type=None, overwrite=False):
    """Encrypt the file src to dst (default src + ".ppml") with its length recorded, as
    ``ppml encrypt``; the content type defaults from the extension (csv, json, parquet, else
    bytes). ``key`` or ``recipient`` as for ``create``. Returns the header."""
    src = os.fsdecode(src)
    dst = os.fsdecode(dst) if dst is not None else src + ".ppml"
    if content_type is None:
        ext = os.path.splitext(src)[1].lower().lstrip(".")
        content_type = {"csv": "csv", "json": "json", "jsonl": "json", "ndjson": "json",
                        "parquet": "parquet"}.get(ext, "bytes")
    with io.open(src, "rb") as f:
        st = os.fstat(f.fileno())
        w = create(dst, key=key, recipient=recipient, content_type=content_type, size=st.st_size if stat.S_ISREG(st.st_mode) else None,
                   overwrite=overwrite)
        with w:
            while True:
                b = f.read(_CHUNK)
                if not b:
                    break
                w.write(b)
        return w.header


def decrypt_file(src, dst=None, *, keys, overwrite=False):
    """Decrypt the envelope src to dst (default src without ".ppml"), atomically: dst appears
    only when every segment authenticated, as ``ppml decrypt``. Returns the bytes written."""
    src = os.fsdecode(src)
    if dst is None:
        if not src.endswith(".ppml"):
            raise ValueError(f"{src} does not end in .ppml: give the output path")
        dst = src[:-len(".ppml")]
    with open(src, keys=keys) as f, AtomicFile(dst, overwrite=overwrite) as out:
        return f.copy_to(out)


def inspect(file):
    """The header of an envelope, without a key (nothing is authenticated)."""
    if isinstance(file, (str, bytes, os.PathLike)):
        with io.open(file, "rb") as f:
            return _inspect(f, os.fsdecode(file))
    return _inspect(file, getattr(file, "name", None))


def _inspect(f, name):
    try:
        return hdr.read_header(f.read)
    except EnvelopeError as e:
        raise _with_path(e, name) from None


class _Window:
    """A file object seen from ``start`` on (an envelope embedded at an offset)."""

    def __init__(self, f, start):
        self._f, self._start = f, start

    def seek(self, off, whence=io.SEEK_SET):
        return self._f.seek(off + self._start if whence == io.SEEK_SET else off, whence) - self._start

    def read(self, n=-1):
        return self._f.read(n)


class _Buffered(io.BufferedIOBase):
    """Adapts an envelope file object for io.TextIOWrapper (which wants read1 and closes it)."""

    def __init__(self, raw):
        super().__init__()
        self.raw = raw

    def readable(self):
        return True

    def read(self, n=-1):
        return self.raw.read(n)

    def read1(self, n=-1):
        return self.raw.read(n if n is not None and n >= 0 else 1 << 20)

    def readinto(self, b):
        return self.raw.readinto(b)

    def seekable(self):
        return self.raw.seekable()

    def seek(self, *a):
        return self.raw.seek(*a)

    def tell(self):
        return self.raw.tell()

    def close(self):
        self.raw.close()
        super().close()

    @property
    def header(self):
        return self.raw.header


class _TextWriter(io.TextIOWrapper):
    """Text mode over an EnvelopeWriter: close commits, an exception in ``with`` aborts."""

    def __init__(self, w, **kw):
        self._w = w
        super().__init__(w, write_through=False, **kw)

    @property
    def header(self):
        return self._w.header

    def abort(self):
        self._w.abort()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._w.abort()
            return False
        self.close()
        return False

    def __del__(self):
        if not self._w.closed:
            self._w.abort()
