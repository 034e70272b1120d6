"""Reading envelopes: a random-access file object (Go: envelope.File) and a sequential one for
pipes (Go: envelope.Reader), with the checks, order and errors of docs/formats/envelope.md,
section 6. Plaintext is released only from segments that authenticated."""
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import header as hdr
from .errors import (AuthenticationError, CorruptHeaderError, TrailingDataError, TruncatedError)
from .header import TAG_SIZE


def default_workers():
    """Segments decrypted in parallel by default: one, on the caller's thread. Threads can
    overlap OpenSSL calls (they run without the GIL), but the per-segment Python work around
    them contends for the GIL; on the 2-CPU machines measured, python3 -m ppml.bench ran
    several times faster inline than with 2 threads. ``workers=N`` turns them on."""
    return 1


class _Opener:
    """Authenticates and decrypts the segments of one file (thread-safe)."""

    def __init__(self, h, data_key):
        self._alg = algorithms.AES(hdr.payload_key(data_key, h.raw, h.salt))
        self._prefix = h.nonce_prefix

    def open_into(self, ct, index, last, out):
        """Decrypt segment ``index`` from ct (bytes-like, tag last) into out; return the
        plaintext length, or raise InvalidTag (out then holds nothing usable)."""
        ct = memoryview(ct)
        d = Cipher(self._alg, modes.GCM(hdr.nonce(self._prefix, index, last), bytes(ct[-TAG_SIZE:]))).decryptor()
        n = d.update_into(ct[:-TAG_SIZE], out)
        try:
            d.finalize()
        except InvalidTag:
            out[:n] = bytes(n)  # never keep unauthenticated plaintext around
            raise
        return n

    def opens_as(self, ct, index, last, scratch):
        try:
            self.open_into(ct, index, last, scratch)
            return True
        except InvalidTag:
            return False

    def diagnose(self, ct, index, want_last, scratch):
        """Explain why a segment failed with the expected last flag (Go: opener.diagnose)."""
        if self.opens_as(ct, index, not want_last, scratch):
            if want_last:
                return TruncatedError("the file is truncated: this is the last segment present but the writer "
                                      "did not mark it final", index)
            return TrailingDataError("this is the final segment, but more data follows it (bytes were appended)", index)
        if index == 0:
            return AuthenticationError("authentication failed: the body does not belong to this header (header of "
                                       "another file?), or the data was modified or truncated", 0)
        if want_last:
            return AuthenticationError("authentication failed: the file is truncated or extended, or the data "
                                       "was modified", index)
        return AuthenticationError("authentication failed: the data was modified, segments were reordered or "
                                   "truncated, or the segment comes from another file", index)


def unlock(h, resolver):
    dk = resolver.unwrap_data_key(h.key_ref, h.wrapped_key, h.wrap_aad)
    try:
        return _Opener(h, dk)
    finally:
        if isinstance(dk, bytearray):
            dk[:] = bytes(len(dk))


class EnvelopeFile(io.BufferedIOBase):
    """The plaintext of an envelope as a read-only, seekable binary file object.

    Opening authenticates the key and the final segment, so truncation and appended bytes are
    reported before any read; each read decrypts (and caches) only the segments it needs, and
    sequential reads decrypt the next segments on up to ``workers`` threads (OpenSSL's
    AES-GCM runs without the GIL).
    """

    def __init__(self, source, size, resolver, name=None, closefd=False, workers=None):
        super().__init__()
        self.name = name
        # Owned only once the constructor succeeded: on failure the caller closes the source,
        # and this half-built object's close() (run when it is collected) must not close a
        # descriptor number that may by then belong to another file.
        self._closefd = False
        self._src = source
        self._lock = threading.Lock()
        self._pool = None
        self._pending = {}
        self._bufs = None
        self._ready = False  # no prefetching while the constructor checks the file
        if hasattr(source, "fileno"):
            try:
                self._fd = source.fileno() if not isinstance(source, int) else source
            except (OSError, io.UnsupportedOperation):
                self._fd = None
        else:
            self._fd = source if isinstance(source, int) else None
        pos = [0]

        def read(n):
            b = self._pread(n, pos[0])
            pos[0] += len(b)
            return b

        h = hdr.read_header(read)
        op = unlock(h, resolver)
        self.header = h
        self._op = op
        self._seg = h.segment_size
        self._body_off = len(h.raw)
        self._cached = (-1, None)
        self._off = 0
        self._workers = default_workers() if workers is None else max(1, workers)
        body = size - self._body_off
        n = hdr.plaintext_len(body, self._seg)
        if h.length_known:
            want = hdr.body_len(h.plaintext_length, self._seg)
            if body < want:
                raise TruncatedError(f"envelope truncated: the body is {body} bytes, but the header declares "
                                     f"{h.plaintext_length} bytes of plaintext ({want} body bytes)")
            if body > want:
                self._layout(h.plaintext_length, want)
                self._segment(self._nseg - 1)  # intact up to the appended bytes?
                raise TrailingDataError(f"data after the final segment: {body - want} bytes follow the final "
                                        "segment (appended data)")
            n = h.plaintext_length
        if n is None:
            raise TruncatedError(f"envelope truncated: a body of {body} bytes cannot end with a complete final "
                                 "segment (truncated or extended)")
        self._layout(n, body)
        try:
            self._segment(self._nseg - 1)
        except AuthenticationError:
            if self._nseg > 1 and self._is_final(self._nseg - 2):
                raise TrailingDataError("this is the final segment, but more data follows it (bytes were appended)",
                                        self._nseg - 2) from None
            if self._nseg > 1:
                self._segment(0)  # a failing first segment is the more useful message
            raise
        self._ready = True
        self._closefd = closefd

    # -- layout and segments ---------------------------------------------------------------

    def _layout(self, n, body):
        self.size = n
        self._nseg = hdr.num_segments(n, self._seg)
        self._last_ct = body - (self._nseg - 1) * (self._seg + TAG_SIZE)

    def _pread(self, n, off):
        if self._fd is not None:
            out = b""
            while len(out) < n:
                b = os.pread(self._fd, n - len(out), off + len(out))
                if not b:
                    break
                out += b
            return out
        with self._lock:
            self._src.seek(off)
            return self._src.read(n)

    def _ct(self, i, buf=None):
        """The ciphertext of segment i, read into buf (reused) when given."""
        last = i == self._nseg - 1
        n = self._last_ct if last else self._seg + TAG_SIZE
        off = self._body_off + i * (self._seg + TAG_SIZE)
        if buf is not None and self._fd is not None:
            mv = memoryview(buf)[:n]
            got = 0
            while got < n:
                k = os.preadv(self._fd, [mv[got:]], off + got)
                if k == 0:
                    break
                got += k
            ct = mv[:got]
        else:
            ct = self._pread(n, off)
        if len(ct) < n:
            raise TruncatedError("the file is shorter than when it was opened", i)
        return ct

    def _load(self, i, ct=None, inline=False):
        """Authenticate segment i. Inline loads reuse two buffers (the previous segment's
        plaintext is then gone); loads on worker threads get their own."""
        if inline:
            if self._bufs is None:
                self._bufs = (bytearray(self._seg + TAG_SIZE), bytearray(self._seg + 15))
            ct, out = self._ct(i, self._bufs[0]), self._bufs[1]
        else:
            if ct is None:
                ct = self._ct(i)
            out = bytearray(self._seg + 15)
        last = i == self._nseg - 1
        try:
            n = self._op.open_into(ct, i, last, out)
        except InvalidTag:
            raise self._op.diagnose(ct, i, last, out) from None
        return memoryview(out)[:n]

    def _is_final(self, i):
        ct = self._pread(self._seg + TAG_SIZE, self._body_off + i * (self._seg + TAG_SIZE))
        return len(ct) == self._seg + TAG_SIZE and self._op.opens_as(ct, i, True, bytearray(self._seg + 15))

    def _segment(self, i):
        """The authenticated plaintext of segment i (cached; prefetches ahead when sequential)."""
        ci, cpt = self._cached
        if ci == i:
            return cpt
        fut = self._pending.pop(i, None)
        sequential = fut is not None or ci == i - 1
        self._cached = (-1, None)  # an inline load overwrites the cached plaintext's buffer
        pt = fut.result() if fut is not None else self._load(i, inline=True)
        self._cached = (i, pt)
        if sequential and self._ready and self._workers > 1 and self._nseg > 2:
            self._prefetch(i)
        elif not sequential:
            self._drop_pending()
        return pt

    def _prefetch(self, i):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ppml-envelope")
        for k in list(self._pending):
            if not i < k <= i + 2 * self._workers:
                self._pending.pop(k).cancel()
        for j in range(i + 1, min(self._nseg, i + 1 + 2 * self._workers)):
            if j not in self._pending:
                if self._fd is not None:
                    self._pending[j] = self._pool.submit(self._load, j)
                else:
                    self._pending[j] = self._pool.submit(self._load, j, self._ct(j))

    def _drop_pending(self):
        for f in self._pending.values():
            f.cancel()
        self._pending.clear()

    # -- io.BufferedIOBase --------------------------------------------------------------------

    def readable(self):
        return True

    def seekable(self):
        return True

    def writable(self):
        return False

    def tell(self):
        self._check_open()
        return self._off

    def seek(self, offset, whence=io.SEEK_SET):
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._off + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._off = pos
        return pos

    def readinto(self, b):
        self._check_open()
        mv = memoryview(b).cast("B")
        n = 0
        while n < len(mv) and self._off < self.size:
            i = self._off // self._seg
            pt = self._segment(i)
            start = self._off - i * self._seg
            c = min(len(mv) - n, len(pt) - start)
            mv[n:n + c] = pt[start:start + c]
            n += c
            self._off += c
        return n

    def read(self, size=-1):
        self._check_open()
        if size is None or size < 0:
            size = max(0, self.size - self._off)
        buf = bytearray(min(size, max(0, self.size - self._off)))
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    read1 = read

    def readinto1(self, b):
        return self.readinto(b)

    def pread(self, size, offset):
        """Read ``size`` bytes at ``offset`` without moving the position (Go: ReadAt)."""
        saved = self._off
        try:
            self._off = offset
            return self.read(size)
        finally:
            self._off = saved

    def copy_to(self, dst):
        """Write the plaintext from the current position to dst (a file object with write);
        return the number of bytes written. Stops at the first segment that fails."""
        total = 0
        while self._off < self.size:
            i = self._off // self._seg
            pt = self._segment(i)
            start = self._off - i * self._seg
            dst.write(pt[start:])
            total += len(pt) - start
            self._off += len(pt) - start
        return total

    def _check_open(self):
        if self.closed:
            raise ValueError("I/O operation on closed envelope file")

    def close(self):
        if self.closed:
            return
        self._drop_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._cached = (-1, None)
        if self._closefd:
            if isinstance(self._src, int):
                os.close(self._src)
            else:
                self._src.close()
        super().close()


class EnvelopeStream(io.BufferedIOBase):
    """The plaintext of an envelope read sequentially from a non-seekable source (a pipe), as
    Go's envelope.Reader: each segment is authenticated before its bytes are returned; an
    error, not EOF, is raised unless the final segment was seen and nothing follows it."""

    def __init__(self, source, resolver, name=None, closefd=False):
        super().__init__()
        self.name = name
        self._src = source
        self._closefd = closefd
        h = hdr.read_header(self._read_src)
        self._op = unlock(h, resolver)
        self.header = h
        self._seg = h.segment_size
        self._carry = b""
        self._pt = memoryview(b"")
        self._counter = 0
        self._total = 0
        self._body = 0
        self._done = False
        self._err = None
        self._scratch = bytearray(self._seg + 15)

    def _read_src(self, n):
        out = b""
        while len(out) < n:
            b = self._src.read(n - len(out))
            if not b:
                break
            out += b
        return out

    def _next(self):
        if self._err is not None:
            raise self._err
        try:
            self._advance()
        except (TruncatedError, TrailingDataError, AuthenticationError, CorruptHeaderError) as e:
            self._err = e
            raise

    def _advance(self):
        full = self._seg + TAG_SIZE
        data = self._carry + self._read_src(full + 1 - len(self._carry))
        last = len(data) <= full
        self._carry = b"" if last else data[full:]
        ct = data[:full]
        i, h = self._counter, self.header
        if h.length_known:
            want = hdr.body_len(h.plaintext_length, self._seg)
            if last and self._body + len(ct) < want:
                raise TruncatedError(f"envelope truncated: the body ends after {self._body + len(data)} bytes, but the "
                                     f"header declares {h.plaintext_length} bytes of plaintext ({want} body bytes)")
            remaining = want - self._body
            if len(data) > remaining >= TAG_SIZE and self._op.opens_as(ct[:remaining], i, True, self._scratch):
                raise TrailingDataError("this is the final segment, but more data follows it (bytes were appended; "
                                        f"the header declares {h.plaintext_length} bytes of plaintext)", i)
        if len(ct) < TAG_SIZE:
            raise TruncatedError(f"the file is truncated: only {len(ct)} bytes where a segment of at least "
                                 f"{TAG_SIZE} was expected", i)
        self._body += len(ct)
        self._counter += 1
        out = bytearray(self._seg + 15)
        try:
            n = self._op.open_into(ct, i, last, out)
        except InvalidTag:
            raise self._op.diagnose(ct, i, last, out) from None
        self._total += n
        if h.length_known and (self._total > h.plaintext_length or last and self._total != h.plaintext_length):
            raise CorruptHeaderError(f"corrupt envelope header: segment {i}: plaintext length disagrees with the "
                                     f"{h.plaintext_length} bytes the header declares")
        self._done = last
        self._pt = memoryview(out)[:n]

    def readable(self):
        return True

    def readinto(self, b):
        if self.closed:
            raise ValueError("I/O operation on closed envelope stream")
        mv = memoryview(b).cast("B")
        n = 0
        while n < len(mv):
            if not self._pt:
                if self._done:
                    break
                if n:
                    break  # return what we have; the next call authenticates more
                self._next()
                continue
            c = min(len(mv) - n, len(self._pt))
            mv[n:n + c] = self._pt[:c]
            self._pt = self._pt[c:]
            n += c
        return n

    def read(self, size=-1):
        if size is None or size < 0:
            chunks = []
            while True:
                if not self._pt:
                    if self._done:
                        break
                    self._next()
                    continue
                chunks.append(bytes(self._pt))
                self._pt = memoryview(b"")
            return b"".join(chunks)
        buf = bytearray(size)
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    read1 = read

    def readinto1(self, b):
        return self.readinto(b)

    def close(self):
        if not self.closed:
            self._pt = memoryview(b"")
            if self._closefd:
                self._src.close()
        super().close()
