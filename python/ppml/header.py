"""The envelope header (docs/formats/envelope.md, sections 1 and 2): parsing with the checks
and errors of Go's envelope.ReadHeader, the body layout, and the payload key."""
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import keyref
from .errors import (CorruptHeaderError, EmptyFileError, NotEnvelopeError, TruncatedError,
                     UnsupportedError)

MAGIC = b"PPMLENV"
VERSION = 1
SUITE_AES256GCM_HKDF = 1
FIXED_LEN = 63
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
DATA_KEY_SIZE = 32
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 64 << 20
MAX_WRAPPED_KEY_LEN = 16384
UNKNOWN_LENGTH = 0xFFFFFFFFFFFFFFFF
# Flag bit 0: the length was recorded after the data key was wrapped (two-phase writing,
# docs/formats/envelope.md section 7.1); the wrap's associated data then has L = UNKNOWN_LENGTH.
FLAG_LENGTH_AFTER_WRAP = 0x0001
MAX_SEGMENTS = 1 << 32
PAYLOAD_LABEL = b"ppml-envelope v1 payload key"

CONTENT_TYPES = {1: "bytes", 2: "csv", 3: "json", 4: "parquet", 5: "model"}
_TYPE_BY_NAME = {v: k for k, v in CONTENT_TYPES.items()}

_FIXED = struct.Struct(">7sBBBHIQ32s7s")


def content_type_name(t):
    """The name of a content type number; unknown ones are shown as type-N."""
    return CONTENT_TYPES.get(t, f"type-{t}")


def parse_content_type(t):
    """Map a name (csv, json, parquet, model, bytes) or a number 1-255 to the type number."""
    if isinstance(t, int) and not isinstance(t, bool):
        if not 1 <= t <= 255:
            raise ValueError(f"content type {t}: want 1 to 255")
        return t
    n = _TYPE_BY_NAME.get(str(t).lower())
    if n is None:
        raise ValueError(f"unknown content type {t!r} (want csv, json, parquet, model or bytes)")
    return n


@dataclass
class Header:
    """A parsed envelope header; ``raw`` is its exact bytes (bound into the payload key)."""

    version: int
    suite: int
    content_type: int
    flags: int
    segment_size: int
    plaintext_length: int  # UNKNOWN_LENGTH when the writer streamed its input
    salt: bytes
    nonce_prefix: bytes
    key_ref: keyref.KeyRef
    wrapped_key: bytes
    raw: bytes

    @property
    def length_known(self):
        return self.plaintext_length != UNKNOWN_LENGTH

    @property
    def length_after_wrap(self):
        return bool(self.flags & FLAG_LENGTH_AFTER_WRAP)

    @property
    def wrap_aad(self):
        """The associated data of the data-key wrapping (section 4): the fixed part, with the
        length field read as unrecorded when the length was recorded after the wrap."""
        if not self.length_after_wrap:
            return self.raw[:FIXED_LEN]
        return self.raw[:16] + struct.pack(">Q", UNKNOWN_LENGTH) + self.raw[24:FIXED_LEN]

    @property
    def content_type_name(self):
        return content_type_name(self.content_type)

    def __len__(self):
        return len(self.raw)


def build_fixed(content_type, segment_size, plaintext_length, salt, nonce_prefix):
    return _FIXED.pack(MAGIC, VERSION, SUITE_AES256GCM_HKDF, content_type, 0, segment_size,
                       plaintext_length, salt, nonce_prefix)


def finish(fixed, ref, wrapped):
    """Append the key reference and wrapped key to the fixed part: the complete header."""
    s = str(ref)
    keyref.parse(s)
    if not 1 <= len(wrapped) <= MAX_WRAPPED_KEY_LEN:
        raise ValueError(f"wrapped data key is {len(wrapped)} bytes, want 1 to {MAX_WRAPPED_KEY_LEN}")
    r = s.encode("ascii")
    return fixed + struct.pack(">H", len(r)) + r + struct.pack(">H", len(wrapped)) + bytes(wrapped)


def read_header(read):
    """Read and validate a header through read(n) (which returns fewer bytes only at the end),
    consuming exactly its bytes. Nothing is authenticated: that needs the key."""
    fixed = _read_full(read, FIXED_LEN)
    n = len(fixed)
    if n == 0:
        raise EmptyFileError("not a ppml envelope: the file is empty")
    if n < len(MAGIC) and fixed == MAGIC[:n]:
        raise TruncatedError(f"envelope truncated: the file ends inside the magic number after {n} bytes")
    if n < len(MAGIC) or fixed[:len(MAGIC)] != MAGIC:
        raise NotEnvelopeError('not a ppml envelope: it does not start with "PPMLENV"')
    if n > len(MAGIC) and fixed[7] != VERSION:
        raise UnsupportedError(f"unsupported envelope: envelope version {fixed[7]} (this ppml reads version {VERSION})")
    if n < FIXED_LEN:
        raise TruncatedError(f"envelope truncated: header cut off after {n} bytes")
    _, version, suite, ctype, flags, seg, length, salt, prefix = _FIXED.unpack(fixed)
    if suite != SUITE_AES256GCM_HKDF:
        raise UnsupportedError(f"unsupported envelope: cipher suite {suite}")
    if flags & ~FLAG_LENGTH_AFTER_WRAP:
        raise UnsupportedError(f"unsupported envelope: unknown header flags {flags & ~FLAG_LENGTH_AFTER_WRAP:#06x} "
                               "(a newer ppml wrote this file)")
    if ctype == 0:
        raise CorruptHeaderError("corrupt envelope header: content type 0 is reserved")
    if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE:
        raise CorruptHeaderError(f"corrupt envelope header: segment size {seg} outside {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE}")
    if flags & FLAG_LENGTH_AFTER_WRAP and length == UNKNOWN_LENGTH:
        raise CorruptHeaderError("corrupt envelope header: the flags say the plaintext length was recorded after "
                                 "the key wrap, but no length is recorded")
    if length != UNKNOWN_LENGTH and num_segments(length, seg) > MAX_SEGMENTS:
        raise CorruptHeaderError(f"corrupt envelope header: plaintext length {length} needs more than 2^32 segments")
    ref_bytes = _read_field(read, "key reference", keyref.MAX_KEY_REF_LEN)
    try:
        ref = keyref.parse(ref_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        if isinstance(e, UnicodeDecodeError):
            e = f"key reference {ref_bytes!r} is not valid text"
        raise CorruptHeaderError(f"corrupt envelope header: {e}") from None
    wrapped = _read_field(read, "wrapped data key", MAX_WRAPPED_KEY_LEN)
    raw = fixed + struct.pack(">H", len(ref_bytes)) + ref_bytes + struct.pack(">H", len(wrapped)) + wrapped
    return Header(version, suite, ctype, flags, seg, length, salt, prefix, ref, wrapped, raw)


def _read_full(read, n):
    out = b""
    while len(out) < n:
        chunk = read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _read_field(read, what, maximum):
    lb = _read_full(read, 2)
    if len(lb) < 2:
        raise TruncatedError(f"envelope truncated: header cut off in the {what} length")
    (n,) = struct.unpack(">H", lb)
    if n == 0 or n > maximum:
        raise CorruptHeaderError(f"corrupt envelope header: {what} length {n} outside 1..{maximum}")
    v = _read_full(read, n)
    if len(v) < n:
        raise TruncatedError(f"envelope truncated: header cut off in the {what}")
    return v


def num_segments(n, seg):
    """Segments for a plaintext of n bytes: one empty final segment when n is 0."""
    return 1 if n == 0 else (n + seg - 1) // seg


def body_len(n, seg):
    return n + num_segments(n, seg) * TAG_SIZE


def plaintext_len(body, seg):
    """Invert body_len: the plaintext length, or None when no length yields this body."""
    full_seg = seg + TAG_SIZE
    if body < TAG_SIZE:
        return None
    full, rem = divmod(body, full_seg)
    if rem == 0:
        n = full * seg
    elif rem <= TAG_SIZE:
        if full != 0 or rem != TAG_SIZE:
            return None
        n = 0
    else:
        n = full * seg + rem - TAG_SIZE
    return n if num_segments(n, seg) <= MAX_SEGMENTS else None


def payload_key(data_key, header_raw, salt):
    """K = HKDF-SHA256(DK, salt, "ppml-envelope v1 payload key" || SHA-256(header))."""
    if len(data_key) != DATA_KEY_SIZE:
        raise ValueError(f"data key is {len(data_key)} bytes, want {DATA_KEY_SIZE}")
    info = PAYLOAD_LABEL + hashlib.sha256(header_raw).digest()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(bytes(data_key))


def nonce(prefix, index, last):
    return prefix + struct.pack(">IB", index & 0xFFFFFFFF, 1 if last else 0)
