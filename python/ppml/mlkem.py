"""ML-KEM-768 + X25519 (``mlkem768x25519``, the CLI's default recipient key type) through the
``ppml`` command.

Debian's python3-cryptography has no ML-KEM, and a post-quantum KEM is not something to
re-implement beside the audited one in Go; so, as for Parquet, the SDK hands the whole file to
the CLI: ``ppml encrypt --recipient PUB -o - -`` for writing and ``ppml decrypt --key KEY -o -``
for reading. Plaintext only ever crosses pipes; the private key reaches the child as a memfd
(``/proc/self/fd/N``); a written file appears atomically through the SDK's AtomicFile, exactly
as for every other key, and only once the CLI exited 0. The CLI's envelope errors become the
SDK's exception classes (the Go sentence after ``ppml: NAME: `` names the class), so a tampered
file raises what it raises with any other key.

The CLI is ``$PPML_BIN`` or ``ppml`` on ``PATH`` (ppml.cli.binary); without it these keys raise
UnsupportedError saying so and what to do.
"""
import io
import os
import re
import signal
import subprocess
import threading

from . import cli
from . import header as hdr
from . import keyref
from .errors import (AuthenticationError, CorruptHeaderError, EmptyFileError, EnvelopeError, KeyFileError,
                     NotEnvelopeError, PPMLError, TrailingDataError, TruncatedError, UnsupportedError, WrongKeyError)

KEM = keyref.KEM_MLKEM768X25519
_CHUNK = 1 << 20
_MAX_STDERR = 64 << 10
_HEADER_KEEP = 256 << 10  # ciphertext kept to parse the written header (a header is a few KiB)


def binary(what):
    """The ppml binary, or UnsupportedError naming the missing support and the way out."""
    try:
        return cli.binary()
    except PPMLError as e:
        raise UnsupportedError(
            f"{what}: recipient key type {KEM} ({keyref.kem_display(KEM)}) needs ML-KEM-768, which "
            "python3-cryptography lacks, so the Python SDK hands such files to the ppml command — and "
            f"it is not available ({e}). Put ppml on PATH or set PPML_BIN (make build builds bin/ppml), "
            "or use an x25519 key pair (ppml key generate --recipient --kem x25519)") from None


class KeyFD:
    """A recipient private key file in a memfd that a child ppml opens as /proc/self/fd/N: the
    key never touches the disk, whatever path it was loaded from."""

    def __init__(self, text):
        self.fd = os.memfd_create("ppml-recipient-key", os.MFD_CLOEXEC)
        try:
            os.fchmod(self.fd, 0o600)
            os.write(self.fd, text)
        except BaseException:
            os.close(self.fd)
            raise
        self.path = f"/proc/self/fd/{self.fd}"

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def public_key_text(key_file_text):
    """The public key (ppmlpq1…) of a private key file, computed by ``ppml key public``."""
    argv = [binary("reading an ML-KEM private key"), "key", "public"]
    with KeyFD(key_file_text) as k:
        r = subprocess.run(argv + [k.path], stdin=subprocess.DEVNULL, capture_output=True, pass_fds=(k.fd,))
    if r.returncode != 0:
        raise KeyFileError("ppml key public: " + _cli_message(r.stderr, k.path))
    return r.stdout.decode("ascii", "replace").strip()


def _cli_message(stderr, name=None):
    text = stderr.decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.startswith("ppml: ")] or text.splitlines() or [""]
    msg = lines[-1]
    msg = msg[len("ppml: "):] if msg.startswith("ppml: ") else msg
    for n in ((name, "stdin") if name == "-" else (name,)):  # the CLI calls its stdin either
        if n and msg.startswith(n + ": "):
            return msg[len(n) + 2:]
    return msg


_SEGMENT = re.compile(r"segment (\d+): (.*)", re.S)


def cli_error(stderr, name, need=None, given=""):
    """The SDK exception for a failed ppml encrypt/decrypt, by the Go error's sentence."""
    msg = _cli_message(stderr, name)
    seg = None
    m = _SEGMENT.fullmatch(msg)
    body = msg
    if m:
        seg, body = int(m.group(1)), m.group(2)
    if body.startswith("wrong key") and need is not None:
        return WrongKeyError(need, given)
    if body.startswith("not a ppml envelope"):
        return (EmptyFileError if "empty" in body else NotEnvelopeError)(msg)
    if body.startswith("unsupported envelope"):
        return UnsupportedError(msg)
    if body.startswith("corrupt envelope header"):
        return CorruptHeaderError(msg)
    if seg is None:
        for prefix, cls in (("envelope truncated", TruncatedError), ("data after the final segment", TrailingDataError),
                            ("segment authentication failed", AuthenticationError)):
            if body.startswith(prefix):
                return cls(body)
    else:  # Go's SegmentError: its sentences (envelope/reader.go, file.go) say the class
        for prefix, cls in (("the file is truncated", TruncatedError), ("the file is shorter", TruncatedError),
                            ("this is the final segment, but more data follows", TrailingDataError),
                            ("authentication failed", AuthenticationError)):
            if body.startswith(prefix):
                return cls(body, seg)
    return EnvelopeError(f"ppml: {msg}" if msg else "ppml failed without a message")


class _Drain(threading.Thread):
    """Copies a child's pipe into a sink (or a bounded buffer) until EOF, keeping the error."""

    def __init__(self, pipe, sink=None, limit=None, keep=0):
        super().__init__(daemon=True)
        self.pipe, self.sink, self.limit, self.keep = pipe, sink, limit, keep
        self.buf = bytearray()
        self.error = None
        self.start()

    def run(self):
        try:
            while True:
                b = self.pipe.read1(_CHUNK) if hasattr(self.pipe, "read1") else self.pipe.read(_CHUNK)
                if not b:
                    break
                if self.sink is not None:
                    if len(self.buf) < self.keep:
                        self.buf += b[:self.keep - len(self.buf)]
                    self.sink.write(b)
                elif self.limit is None or len(self.buf) < self.limit:
                    self.buf += b if self.limit is None else b[:self.limit - len(self.buf)]
        except BaseException as e:  # noqa: BLE001 - reported by the owner of the thread
            self.error = e
            try:  # keep the child from blocking on a full pipe
                while self.pipe.read(_CHUNK):
                    pass
            except (OSError, ValueError):
                pass


def _kill(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


class CLIWriter(io.BufferedIOBase):
    """ppml.create for an mlkem768x25519 recipient: what is written goes to ``ppml encrypt
    --recipient PUB -o - -`` through a pipe; its output goes to ``sink`` (an AtomicFile for a
    path: committed on a clean close only). The length is recorded as unknown (the CLI reads a
    pipe); ``size`` still makes close() fail unless exactly that many bytes were written.
    ``header`` is the written header, once close() succeeded."""

    def __init__(self, sink, recipient, content_type="bytes", size=None, name=None):
        super().__init__()
        self._proc = None  # abort() of a writer whose constructor failed has nothing to stop
        self.name = name
        self.header = None
        self._sink = sink
        ctype = hdr.content_type_name(hdr.parse_content_type(content_type))
        if size is not None and size < 0:
            raise ValueError(f"negative plaintext size {size}")
        self._declared, self._total = size, 0
        self._failed = None
        argv = [binary(f"encrypting {name or 'a file'} to {recipient.ref.describe()}"), "encrypt",
                "--recipient", str(recipient), "--type", ctype, "-o", "-", "-"]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out = _Drain(self._proc.stdout, sink=sink, keep=_HEADER_KEEP)
        self._err = _Drain(self._proc.stderr, limit=_MAX_STDERR)

    def writable(self):
        return True

    def write(self, b):
        if self.closed:
            raise ValueError("write to closed envelope writer")
        if self._failed is not None:
            raise EnvelopeError(f"envelope writer failed earlier: {self._failed}")
        mv = memoryview(b).cast("B")
        if self._declared is not None and self._total + len(mv) > self._declared:
            self._failed = EnvelopeError(f"more than the declared {self._declared} bytes of plaintext were written")
            raise self._failed
        try:
            self._proc.stdin.write(mv)
        except (BrokenPipeError, ValueError):
            self._failed = self._finish_error()
            raise self._failed from None
        self._total += len(mv)
        return len(mv)

    def _finish_error(self):
        _kill(self._proc)
        self._out.join()
        self._err.join()
        if self._out.error is not None:
            return EnvelopeError(f"writing {self.name or 'the envelope'}: {self._out.error}")
        return cli_error(bytes(self._err.buf), "-")

    def close(self):
        """Finish the CLI's envelope and, for an atomic sink, commit the file."""
        if self.closed:
            return
        try:
            if self._failed is not None:
                raise EnvelopeError(f"envelope not written: {self._failed}")
            if self._declared is not None and self._total != self._declared:
                raise EnvelopeError(f"only {self._total} of the declared {self._declared} bytes of plaintext were written")
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
            rc = self._proc.wait()
            self._out.join()
            self._err.join()
            if self._out.error is not None:
                raise EnvelopeError(f"writing {self.name or 'the envelope'}: {self._out.error}")
            if rc != 0:
                raise cli_error(bytes(self._err.buf), "-")
            self.header = hdr.read_header(io.BytesIO(bytes(self._out.buf)).read)
            if hasattr(self._sink, "commit"):
                self._sink.commit()
        except BaseException:
            self.abort()
            raise
        finally:
            super().close()

    def abort(self):
        """Stop the CLI and discard the output: an atomic sink leaves nothing behind."""
        if self._proc is not None:
            _kill(self._proc)
            try:
                self._proc.stdin.close()
            except (OSError, ValueError):
                pass
            self._out.join()
            self._err.join()
        if hasattr(self._sink, "abort"):
            self._sink.abort()
        self._failed = self._failed or EnvelopeError("aborted")
        if not self.closed:
            super().close()

    def __del__(self):
        if not self.closed:
            self.abort()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False


class PlaintextFile(io.BytesIO):
    """The plaintext of an envelope the CLI decrypted, in memory (the CLI authenticates every
    segment before it writes a byte to a pipe, and this object exists only once it exited 0):
    seekable, with ``header``, ``pread`` and ``copy_to`` as ppml.open's file objects have. Closing
    it overwrites the buffer."""

    def __init__(self, data, header, name=None):
        super().__init__(data)
        self.header = header
        self.name = name

    def pread(self, size, offset):
        buf = self.getbuffer()
        try:
            return bytes(buf[offset:offset + size])
        finally:
            buf.release()

    def copy_to(self, dst):
        """Write the rest of the plaintext to dst; returns the number of bytes."""
        n = 0
        while True:
            b = self.read(_CHUNK)
            if not b:
                return n
            dst.write(b)
            n += len(b)

    def close(self):
        if not self.closed:
            buf = self.getbuffer()
            buf[:] = bytes(len(buf))
            buf.release()
        super().close()


def decrypt(source, identity, header, name=None, prefix=b""):
    """Decrypt a whole envelope with ``ppml decrypt``: ``source`` is a path (the CLI reads it) or
    a binary file object positioned after ``prefix`` (the bytes already read from it; both are
    piped to the CLI). Returns a PlaintextFile; raises the SDK's envelope errors."""
    argv = [binary(f"decrypting {name or 'a file'}"), "decrypt", "--key"]
    shown = name or "-"
    with KeyFD(identity.key_file_text()) as k:
        if isinstance(source, str):
            argv += [k.path, "-o", "-", source]
            shown = source
            stdin = subprocess.DEVNULL
        else:
            argv += [k.path, "-o", "-", "-"]
            shown = "-"
            stdin = subprocess.PIPE
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(k.fd,))
    out = _Drain(proc.stdout)
    err = _Drain(proc.stderr, limit=_MAX_STDERR)
    feed_error = None
    try:
        if stdin is subprocess.PIPE:
            try:
                if prefix:
                    proc.stdin.write(prefix)
                while True:
                    b = source.read(_CHUNK)
                    if not b:
                        break
                    proc.stdin.write(b)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the CLI stopped reading: its exit status says why
            except BaseException as e:
                feed_error = e
                _kill(proc)
        rc = proc.wait()
        out.join()
        err.join()
    except BaseException:
        _kill(proc)
        out.join()
        _wipe(out.buf)
        raise
    if feed_error is not None or rc != 0 or out.error is not None:
        _wipe(out.buf)
        if feed_error is not None:
            raise feed_error
        if out.error is not None:
            raise EnvelopeError(f"reading the ppml decrypt output: {out.error}")
        raise cli_error(bytes(err.buf), shown, header.key_ref, identity.ref.describe())
    try:
        return PlaintextFile(out.buf, header, name=name)
    finally:
        _wipe(out.buf)


def _wipe(b):
    b[:] = bytes(len(b))
