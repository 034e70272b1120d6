"""Writing envelopes (docs/formats/envelope.md, section 7; Go: envelope.Writer and
envelope.CreateFile): header first, then AES-256-GCM segments; a full segment is sealed as
non-final only once more plaintext follows, so the final one holds 1..S bytes."""
import io
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import header as hdr
from .errors import EnvelopeError
from .header import TAG_SIZE


class EnvelopeWriter(io.BufferedIOBase):
    """A write-only binary file object that encrypts into an envelope.

    ``sink`` is an AtomicFile (what ``ppml.create`` passes: nothing appears at the path until
    ``close`` succeeds, nothing is left on error) or any object with ``write``. With ``size``
    the plaintext length is recorded in the header and ``close`` fails unless exactly that many
    bytes were written; without it the length is recorded as unknown, as for a pipe.
    """

    def __init__(self, sink, key, content_type="bytes", segment_size=hdr.DEFAULT_SEGMENT_SIZE, size=None,
                 name=None):
        super().__init__()
        self.name = name
        self._sink = sink
        ctype = hdr.parse_content_type(content_type)
        if not hdr.MIN_SEGMENT_SIZE <= segment_size <= hdr.MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size {segment_size} outside {hdr.MIN_SEGMENT_SIZE}..{hdr.MAX_SEGMENT_SIZE}")
        length = hdr.UNKNOWN_LENGTH
        if size is not None:
            if size < 0:
                raise ValueError(f"negative plaintext size {size}")
            if hdr.num_segments(size, segment_size) > hdr.MAX_SEGMENTS:
                raise ValueError(f"plaintext of {size} bytes needs more than 2^32 segments of {segment_size} bytes")
            length = size
        fixed = hdr.build_fixed(ctype, segment_size, length, secrets.token_bytes(hdr.SALT_SIZE),
                                secrets.token_bytes(hdr.NONCE_PREFIX_SIZE))
        if not hasattr(key, "new_data_key"):
            raise TypeError(f"{key!r} cannot write envelopes (it has no new_data_key)")
        dk, wrapped, ref = key.new_data_key(fixed)
        raw = hdr.finish(fixed, ref, wrapped)
        self.header = hdr.read_header(io.BytesIO(raw).read)
        self._alg = algorithms.AES(hdr.payload_key(dk, raw, self.header.salt))
        self._prefix = self.header.nonce_prefix
        self._seg = segment_size
        self._buf = bytearray(segment_size)
        self._n = 0
        self._out = bytearray(segment_size + 15)
        self._counter = 0
        self._total = 0
        self._declared = size
        self._failed = None
        self._write_sink(raw)

    def _write_sink(self, b):
        try:
            self._sink.write(b)
        except BaseException as e:
            self._failed = e
            raise

    def _seal(self, last):
        if self._counter >= hdr.MAX_SEGMENTS:
            raise EnvelopeError("plaintext too long: more than 2^32 segments")
        e = Cipher(self._alg, modes.GCM(hdr.nonce(self._prefix, self._counter, last))).encryptor()
        n = e.update_into(memoryview(self._buf)[:self._n], self._out)
        e.finalize()
        self._write_sink(memoryview(self._out)[:n])
        self._write_sink(e.tag)
        self._counter += 1
        self._n = 0

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
        written = 0
        while written < len(mv):
            if self._n == self._seg:
                self._seal(last=False)
            c = min(self._seg - self._n, len(mv) - written)
            self._buf[self._n:self._n + c] = mv[written:written + c]
            self._n += c
            written += c
        self._total += written
        return written

    def close(self):
        """Seal the final segment and, for an atomic sink, commit the file."""
        if self.closed:
            return
        try:
            if self._failed is not None:
                raise EnvelopeError(f"envelope not written: {self._failed}")
            if self._declared is not None and self._total != self._declared:
                raise EnvelopeError(f"only {self._total} of the declared {self._declared} bytes of plaintext were written")
            self._seal(last=True)
            if hasattr(self._sink, "commit"):
                self._sink.commit()
        except BaseException:
            self.abort()
            raise
        finally:
            self._wipe()
            super().close()

    def abort(self):
        """Discard the output: an atomic sink leaves nothing behind."""
        if hasattr(self._sink, "abort"):
            self._sink.abort()
        self._failed = self._failed or EnvelopeError("aborted")
        self._wipe()
        if not self.closed:
            super().close()

    def _wipe(self):
        self._buf[:] = bytes(len(self._buf))
        self._out[:] = bytes(len(self._out))

    def __del__(self):
        # IOBase would close(), i.e. commit, a writer that was never closed: an abandoned
        # writer must leave nothing behind instead.
        if not self.closed:
            self.abort()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False
