"""Keys for envelopes: local key files, key-service keys, and keyrings.

Like Go's envelope.KeyWrapper and envelope.KeyResolver (and age's Recipient and Identity), a
key is anything with one or both of two methods:

- ``new_data_key(aad) -> (data_key, wrapped, ref)`` — a fresh 32-byte data key, its wrapped
  form bound to ``aad`` (the header's fixed part) and the KeyRef to record (writing);
- ``unwrap_data_key(ref, wrapped, aad) -> data_key`` — raise WrongKeyError when the key is not
  the one ``ref`` names (reading).

LocalKey and KMSKey implement both; public-key recipients (module recipient) are the third kind:
a Recipient (public key) only wraps, a RecipientIdentity (private key file) also unwraps. A key
file path loads as a LocalKey or a RecipientIdentity by its key line.
"""
import datetime
import hashlib
import hmac
import os
import secrets
import stat

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import keyref
from .errors import CorruptHeaderError, KeyFileError, UnsupportedError, WrongKeyError
from .header import DATA_KEY_SIZE, TAG_SIZE

LOCAL_KEY_SIZE = 32
KEY_FILE_PREFIX = "ppml-local-key-v1:"
MAX_KEY_FILE_SIZE = 64 << 10
_ID_LABEL = b"ppml-envelope v1 local key id"
_WRAP_LABEL = b"ppml-envelope v1 local wrap key"


class LocalKey:
    """A local key-encryption key (docs/formats/envelope.md, section 4.1).

    ``LocalKey.load(path)`` reads a key file, ``LocalKey.generate(path)`` writes a new one
    (mode 0600, as ``ppml key generate``). ``warning`` is set when the file is readable by
    group or others (the key still loads, as in Go).
    """

    def __init__(self, secret, path=None, warning=""):
        secret = bytes(secret)
        if len(secret) != LOCAL_KEY_SIZE:
            raise ValueError(f"local key must be {LOCAL_KEY_SIZE} bytes, got {len(secret)}")
        self.key_id = hmac.new(secret, _ID_LABEL, hashlib.sha256).digest()[:16].hex()
        wk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_WRAP_LABEL).derive(secret)
        self._wrap = AESGCM(wk)
        self.path = path
        self.warning = warning

    @property
    def ref(self):
        return keyref.KeyRef(keyref.SCHEME_LOCAL, key_id=self.key_id)

    def __repr__(self):
        return f"LocalKey(local:{self.key_id})"

    def new_data_key(self, aad):
        dk = secrets.token_bytes(DATA_KEY_SIZE)
        wnonce = secrets.token_bytes(12)
        return dk, wnonce + self._wrap.encrypt(wnonce, dk, bytes(aad)), self.ref

    def unwrap_data_key(self, ref, wrapped, aad):
        if ref.scheme != keyref.SCHEME_LOCAL or ref.key_id != self.key_id:
            raise WrongKeyError(ref, "local key " + self.key_id)
        if len(wrapped) != 12 + DATA_KEY_SIZE + TAG_SIZE:
            raise CorruptHeaderError(f"corrupt envelope header: wrapped data key is {len(wrapped)} bytes, "
                                     f"a local key wraps to {12 + DATA_KEY_SIZE + TAG_SIZE}")
        try:
            return self._wrap.decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]), bytes(aad))
        except InvalidTag:
            raise CorruptHeaderError("corrupt envelope header: the data key does not unwrap under local key "
                                     f"{self.key_id} although the key ids match: the header was modified") from None

    @classmethod
    def parse(cls, data, path=None):
        """Parse the key file format (docs/formats/envelope.md, section 5)."""
        secret, stated = None, ""
        for i, t in key_file_lines(data, MAX_KEY_FILE_SIZE):
            if t.startswith("#"):
                if t.startswith("# key id:"):
                    stated = t[len("# key id:"):].strip()
                continue
            if t.startswith(KEY_FILE_PREFIX):
                if secret is not None:
                    raise KeyFileError("not a ppml key file: more than one key line")
                h = t[len(KEY_FILE_PREFIX):]
                if len(h) != 2 * LOCAL_KEY_SIZE or any(c not in "0123456789abcdef" for c in h):
                    raise KeyFileError(f"not a ppml key file: line {i}: the key must be "
                                       f"{2 * LOCAL_KEY_SIZE} lowercase hex digits")
                secret = bytes.fromhex(h)
                continue
            raise KeyFileError(f"not a ppml key file: line {i} is neither a comment nor a ppml-local-key-v1 line")
        if secret is None:
            raise KeyFileError("not a ppml key file: no ppml-local-key-v1 line")
        k = cls(secret, path=path)
        if stated and stated != k.key_id:
            raise KeyFileError(f"corrupt key file: it says key id {stated} but the key has id {k.key_id}")
        return k

    @classmethod
    def load(cls, path):
        """Read a key file (Go: keyfile.Load)."""
        path = os.fspath(path)
        data, warning = read_key_file(path)
        try:
            k = cls.parse(data, path=path)
        except KeyFileError as e:
            raise KeyFileError(f"key file {path}: {e}") from None
        k.warning = warning
        return k

    @classmethod
    def generate(cls, path, overwrite=False):
        """Create a new key file at path, mode 0600, atomically (Go: keyfile.Generate)."""
        from .atomic import AtomicFile
        secret = secrets.token_bytes(LOCAL_KEY_SIZE)
        k = cls(secret, path=os.fspath(path))
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = ("# ppml local key-encryption key. Keep it secret: it decrypts every file encrypted under it.\n"
                f"# created: {created}\n# key id: {k.key_id}\n{KEY_FILE_PREFIX}{secret.hex()}\n")
        with AtomicFile(path, overwrite=overwrite) as f:
            f.write(text.encode("ascii"))
        return k


def read_key_file(path):
    """The bytes of a key file and a warning ("" when none) if group or others can access it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KeyFileError(f"key file: {e.strerror}: {path}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        data = f.read(MAX_KEY_FILE_SIZE + 1)
    perm = stat.S_IMODE(st.st_mode)
    warning = ""
    if perm & 0o077:
        warning = f"key file {path} has mode {perm:04o}: group or others can access it; run chmod 600 {path}"
    return data, warning


def key_file_lines(data, limit):
    """(line number, stripped line) of a key file's non-blank lines (section 5)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > limit:
        raise KeyFileError(f"not a ppml key file: larger than {limit} bytes")
    text = data.decode("utf-8", "surrogateescape")  # comments may hold any bytes, as in Go
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines, 1):
        t = line.strip()
        if t:
            yield i, t


def load_key_file(path):
    """A local key (LocalKey) or a recipient private key (RecipientIdentity), by the file's key line."""
    path = os.fspath(path)
    data, warning = read_key_file(path)
    if b"ppml-recipient-key-v1:" in data:
        from .recipient import RecipientIdentity
        cls = RecipientIdentity
    else:
        cls = LocalKey
    try:
        k = cls.parse(data, path=path)
    except KeyFileError as e:
        raise KeyFileError(f"key file {path}: {e}") from None
    except UnsupportedError as e:
        raise UnsupportedError(f"key file {path}: {e}") from None
    k.warning = warning
    return k


class Keyring:
    """Resolves with the first of several keys that holds the file's key (Go: envelope.Keyring)."""

    def __init__(self, keys):
        self.keys = list(keys)

    def unwrap_data_key(self, ref, wrapped, aad):
        given = []
        for k in self.keys:
            try:
                return k.unwrap_data_key(ref, wrapped, aad)
            except WrongKeyError as e:
                given.append(e.given)
        raise WrongKeyError(ref, ", ".join(given) if given else "no key")


class KMSKey:
    """A key at the ppml key service used as an envelope key (Go: client.EnvelopeKey).

    Data keys are generated (POST /v1/datakey) and unwrapped (POST /v1/decrypt) by the service
    with an owner token; the key material never leaves it. Without ``service``, the client is
    made as ``ppml encrypt --key kms://...`` makes it: the reference's host and port, the token
    from PPML_TOKEN, the pin from PPML_SERVER_FINGERPRINT or the CA from PPML_CA_FILE.
    """

    def __init__(self, ref, service=None):
        if isinstance(ref, str):
            try:
                ref = keyref.parse(ref)
            except ValueError as e:
                raise ValueError(f"key {ref!r}: {e}") from None
        if ref.scheme != keyref.SCHEME_KMS:
            raise ValueError(f"{ref} is not a kms:// key reference")
        self.ref = ref
        self._service = service

    def __repr__(self):
        return f"KMSKey({self.ref})"

    @property
    def service(self):
        if self._service is None:
            from .kms import KeyService
            self._service = KeyService.for_key_ref(self.ref)
        return self._service

    def new_data_key(self, aad):
        d = self.service.generate_data_key(self.ref.name, aad)
        return d.data_key, d.wrapped, self.ref.with_version(d.version)

    def unwrap_data_key(self, ref, wrapped, aad):
        if ref.scheme != keyref.SCHEME_KMS or not ref.same_key(self.ref):
            raise WrongKeyError(ref, self.ref.describe())
        return self.service.decrypt_data_key(ref.name, wrapped, aad)


def as_key(k):
    """Turn what a caller passed as a key into a key object: a key object stays as it is, a
    kms://... string becomes a KMSKey, any other string or path is a key file to load."""
    if hasattr(k, "unwrap_data_key") or hasattr(k, "new_data_key"):
        return k
    if isinstance(k, str) and k.startswith("kms://"):
        return KMSKey(k)
    if isinstance(k, (str, bytes, os.PathLike)):
        return load_key_file(os.fsdecode(k))
    raise TypeError(f"cannot use {type(k).__name__} as a key: give a key file path, a kms:// reference, "
                    "a LocalKey, a RecipientIdentity or a KMSKey")


def resolver(keys):
    """A resolver from one key or a list of keys."""
    if keys is None:
        raise TypeError("give the key to read with: keys=PATH, keys='kms://...', or a key object")
    if isinstance(keys, (list, tuple)):
        ks = [as_key(k) for k in keys]
        return ks[0] if len(ks) == 1 else Keyring(ks)
    return as_key(keys)
