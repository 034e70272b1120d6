"""Public-key recipients: encrypt to a public key, decrypt with its private key (an identity).

docs/formats/envelope.md, sections 4.3 (the wrap: HPKE base mode), 5.1 (private key files) and
5.2 (public keys as Bech32m text ``ppml1…``). As Go's envelope.Recipient and
envelope.RecipientIdentity: a ``Recipient`` has ``new_data_key`` only (whoever holds the public
key can encrypt but not decrypt); a ``RecipientIdentity`` has ``unwrap_data_key``.

The ``x25519`` KEM is implemented here. ``mlkem768x25519`` (X-Wing: ML-KEM-768 + X25519, the
CLI's default) needs ML-KEM-768, which Debian's python3-cryptography does not have: its public
keys and key files are read here (key ids, checks), and ``ppml.create``/``ppml.open`` hand files
encrypted to one to the ``ppml`` command (``ppml.mlkem``); without the command they raise
UnsupportedError saying so.
"""
import datetime
import hashlib
import os
import secrets

from . import hpke, keyref
from .errors import CorruptHeaderError, KeyFileError, UnsupportedError, WrongKeyError
from .header import DATA_KEY_SIZE, TAG_SIZE

KEY_LINE_PREFIX = "ppml-recipient-key-v1:"
WRAP_INFO = b"ppml-envelope v1 recipient wrap"
_ID_LABEL = b"ppml-envelope v1 recipient id"
_KEM_IDS = {keyref.KEM_X25519: hpke.KEM_X25519_HKDF_SHA256, keyref.KEM_MLKEM768X25519: 0x647A}
_HRP = {keyref.KEM_X25519: "ppml", keyref.KEM_MLKEM768X25519: "ppmlpq"}
_PUB_LEN = {keyref.KEM_X25519: 32, keyref.KEM_MLKEM768X25519: 1216}
WRAPPED_LEN = hpke.N_ENC + DATA_KEY_SIZE + TAG_SIZE  # x25519: 80 bytes


def _through_cli(what):
    return UnsupportedError(f"{what} with an {keyref.KEM_MLKEM768X25519} ({keyref.kem_display(keyref.KEM_MLKEM768X25519)}) "
                            "key needs ML-KEM-768, which python3-cryptography lacks: use ppml.create / ppml.open "
                            "(or encrypt_file / decrypt_file), which hand the whole file to the ppml command")


def key_id(kem, pk):
    """The recipient key id (section 4.3)."""
    return hashlib.sha256(_ID_LABEL + _KEM_IDS[kem].to_bytes(2, "big") + bytes(pk)).digest()[:16].hex()


# Bech32m (BIP 350), without BIP 173's 90-character limit (section 5.2).
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def _polymod(values):
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk


def _hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data, frm, to, pad):
    acc = bits = 0
    out = []
    maxv = (1 << to) - 1
    for v in data:
        acc = (acc << frm) | v
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to - bits)) & maxv)
    elif bits >= frm or (acc << (to - bits)) & maxv:
        raise ValueError("invalid padding")
    return out


def bech32m_encode(hrp, data):
    d = _regroup(bytes(data), 8, 5, True)
    pm = _polymod(_hrp_expand(hrp) + d + [0] * 6) ^ _BECH32M_CONST
    return hrp + "1" + "".join(_CHARSET[c] for c in d + [(pm >> 5 * (5 - i)) & 31 for i in range(6)])


def bech32m_decode(text):
    """(hrp, bytes) of Bech32m text; ValueError names what is wrong."""
    if text != text.lower() and text != text.upper():
        raise ValueError("mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("not Bech32m text (no prefix, separator 1 and checksum)")
    hrp, rest = text[:pos], text[pos + 1:]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("invalid character in the prefix")
    try:
        values = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise ValueError("invalid character (Bech32m uses qpzry9x8gf2tvdw0s3jn54khce6mua7l)") from None
    if _polymod(_hrp_expand(hrp) + values) != _BECH32M_CONST:
        raise ValueError("bad checksum (a character was changed or lost)")
    return hrp, bytes(_regroup(values[:-6], 5, 8, False))


class Recipient:
    """A public key that files can be encrypted to (Go: envelope.Recipient).

    ``Recipient.parse("ppml1…")`` reads the text form, ``Recipient.load(path)`` a public key file
    (``owner.pub``); ``Recipient.from_key(text_or_path)`` accepts either.
    """

    def __init__(self, kem, public_key):
        if kem not in _KEM_IDS:
            raise ValueError(f"unknown recipient key type {kem!r} (want {' or '.join(keyref.KEMS)})")
        public_key = bytes(public_key)
        if len(public_key) != _PUB_LEN[kem]:
            raise ValueError(f"{keyref.kem_display(kem)} public key is {len(public_key)} bytes, "
                             f"want {_PUB_LEN[kem]}")
        self.kem = kem
        self.public_key = public_key
        self.key_id = key_id(kem, public_key)

    @property
    def ref(self):
        return keyref.KeyRef(keyref.SCHEME_RECIPIENT, key_id=self.key_id, kem=self.kem)

    def __str__(self):
        return bech32m_encode(_HRP[self.kem], self.public_key)

    def __repr__(self):
        return f"Recipient({self})"

    def new_data_key(self, aad):
        if self.kem != keyref.KEM_X25519:
            raise _through_cli("wrapping a data key")
        dk = secrets.token_bytes(DATA_KEY_SIZE)
        enc, ct = hpke.seal_base(self.public_key, WRAP_INFO, bytes(aad), dk)
        return dk, enc + ct, self.ref

    @classmethod
    def parse(cls, text):
        """The public key text (section 5.2): spaces and line breaks inside are ignored."""
        t = "".join(str(text).split())
        try:
            hrp, data = bech32m_decode(t)
        except ValueError as e:
            raise ValueError(f"not a ppml public key: {e}") from None
        for kem, h in _HRP.items():
            if h == hrp:
                return cls(kem, data)
        raise ValueError(f"not a ppml public key: prefix {hrp}1 (want ppml1 or ppmlpq1)")

    @classmethod
    def load(cls, path):
        """A public key file: the key text on one line, # comments (section 5.2)."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read((64 << 10) + 1)
        except OSError as e:
            raise KeyFileError(f"public key file: {e.strerror}: {path}") from None
        if len(data) > 64 << 10:
            raise KeyFileError(f"public key file {path}: larger than 64 KiB")
        lines = [ln.strip() for ln in data.decode("utf-8", "replace").split("\n")]
        keys = [ln for ln in lines if ln and not ln.startswith("#")]
        if len(keys) != 1:
            raise KeyFileError(f"public key file {path}: want exactly one public key line, found {len(keys)}")
        try:
            return cls.parse(keys[0])
        except ValueError as e:
            raise KeyFileError(f"public key file {path}: {e}") from None

    @classmethod
    def from_key(cls, k):
        """A Recipient from a Recipient, a RecipientIdentity, public key text or a public key file."""
        if isinstance(k, Recipient):
            return k
        if isinstance(k, RecipientIdentity):
            return k.recipient
        if isinstance(k, str) and not os.path.exists(k) and k.strip().lower().startswith(("ppml1", "ppmlpq1")):
            return cls.parse(k)
        if isinstance(k, (str, bytes, os.PathLike)):
            return cls.load(os.fsdecode(k))
        raise TypeError(f"cannot use {type(k).__name__} as a recipient: give public key text (ppml1…), "
                        "a public key file path or a Recipient")


class RecipientIdentity:
    """A recipient's private key (Go: envelope.RecipientIdentity): decrypts files encrypted to
    its public key. ``RecipientIdentity.load(path)`` reads a private key file (section 5.1),
    ``RecipientIdentity.generate(path)`` writes one (as ``ppml key generate --recipient --kem
    x25519``) and returns it; ``.recipient`` is the public half."""

    def __init__(self, kem, private_key, path=None, warning=""):
        if kem not in _KEM_IDS:
            raise ValueError(f"unknown recipient key type {kem!r}")
        private_key = bytes(private_key)
        if len(private_key) != 32:
            raise ValueError(f"{keyref.kem_display(kem)} private key is {len(private_key)} bytes, want 32")
        self.kem = kem
        if kem == keyref.KEM_X25519:
            self._sk = hpke.clamp(private_key)
            self.recipient = Recipient(kem, hpke.public_key(self._sk))
        else:
            # The public key of an ML-KEM seed takes ML-KEM key generation: the CLI's.
            from . import mlkem
            self._sk = private_key
            self.recipient = Recipient.parse(mlkem.public_key_text(self.key_file_text()))
        self.key_id = self.recipient.key_id
        self.path = path
        self.warning = warning

    @property
    def ref(self):
        return self.recipient.ref

    def __repr__(self):
        return f"RecipientIdentity({self.ref})"

    def new_data_key(self, aad):
        return self.recipient.new_data_key(aad)

    def key_file_text(self):
        """The key line of this key's file (section 5.1), for the ppml command (secret)."""
        return f"{KEY_LINE_PREFIX}{self.kem}:{self._sk.hex()}\n".encode("ascii")

    def unwrap_data_key(self, ref, wrapped, aad):
        if ref.scheme != keyref.SCHEME_RECIPIENT or ref.kem != self.kem or ref.key_id != self.key_id:
            raise WrongKeyError(ref, self.ref.describe())
        if self.kem != keyref.KEM_X25519:
            raise _through_cli("unwrapping a data key")
        if len(wrapped) != WRAPPED_LEN:
            raise CorruptHeaderError(f"corrupt envelope header: wrapped data key is {len(wrapped)} bytes, "
                                     f"an {keyref.kem_display(self.kem)} recipient wraps to {WRAPPED_LEN}")
        try:
            return hpke.open_base(wrapped[:hpke.N_ENC], self._sk, WRAP_INFO, bytes(aad), wrapped[hpke.N_ENC:])
        except hpke.HPKEError:
            raise CorruptHeaderError("corrupt envelope header: the data key does not unwrap under recipient key "
                                     f"{self.key_id} although the key ids match: the header was modified") from None

    @classmethod
    def parse(cls, data, path=None):
        """Parse a recipient private key file (section 5.1)."""
        from .keys import MAX_KEY_FILE_SIZE, key_file_lines
        stated_id = stated_pub = ""
        key = None
        for i, t in key_file_lines(data, MAX_KEY_FILE_SIZE):
            if t.startswith("#"):
                if t.startswith("# key id:"):
                    stated_id = t[len("# key id:"):].strip()
                elif t.startswith("# public key:"):
                    stated_pub = t[len("# public key:"):].strip()
                continue
            if not t.startswith(KEY_LINE_PREFIX):
                raise KeyFileError(f"not a ppml recipient key file: line {i} is neither a comment nor a "
                                   "ppml-recipient-key-v1 line")
            if key is not None:
                raise KeyFileError("not a ppml recipient key file: more than one key line")
            kem, sep, h = t[len(KEY_LINE_PREFIX):].partition(":")
            if not sep or kem not in _KEM_IDS:
                raise KeyFileError(f"not a ppml recipient key file: line {i}: unknown key type {kem!r} "
                                   f"(want {' or '.join(keyref.KEMS)})")
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise KeyFileError(f"not a ppml recipient key file: line {i}: the key must be 64 lowercase hex digits")
            key = (kem, bytes.fromhex(h))
        if key is None:
            raise KeyFileError("not a ppml recipient key file: no ppml-recipient-key-v1 line")
        k = cls(key[0], key[1], path=path)
        if stated_id and stated_id != k.key_id:
            raise KeyFileError(f"corrupt key file: it says key id {stated_id} but the key has id {k.key_id}")
        if stated_pub:
            try:
                same = Recipient.parse(stated_pub).public_key == k.recipient.public_key
            except (ValueError, UnsupportedError):
                same = False
            if not same:
                raise KeyFileError("corrupt key file: its # public key: line is not this private key's public key")
        return k

    @classmethod
    def load(cls, path):
        from .keys import read_key_file
        path = os.fspath(path)
        data, warning = read_key_file(path)
        try:
            k = cls.parse(data, path=path)
        except KeyFileError as e:
            raise KeyFileError(f"key file {path}: {e}") from None
        except UnsupportedError as e:
            raise UnsupportedError(f"key file {path}: {e}") from None
        k.warning = warning
        return k

    @classmethod
    def generate(cls, path, public=None, overwrite=False):
        """Write a new x25519 private key file at path (mode 0600, atomically) and its public key
        to ``public`` (default: path with .key replaced by .pub, mode 0644)."""
        from .atomic import AtomicFile
        path = os.fspath(path)
        k = cls(keyref.KEM_X25519, hpke.clamp(secrets.token_bytes(32)), path=path)
        pub = k.recipient
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = ("# ppml recipient private key (X25519). Keep it secret: it decrypts every file encrypted to "
                f"its public key.\n# created: {created}\n# key id: {k.key_id}\n# public key: {pub}\n"
                f"{KEY_LINE_PREFIX}{k.kem}:{k._sk.hex()}\n")
        if public is None:
            public = (path[:-4] if path.endswith(".key") else path) + ".pub"
        with AtomicFile(path, overwrite=overwrite) as f:
            f.write(text.encode("ascii"))
        with AtomicFile(os.fspath(public), overwrite=overwrite, mode=0o644) as f:
            f.write(f"{pub}\n".encode("ascii"))
        return k
