"""Key references: the name of the key-encryption key in an envelope header.

Exactly the grammar of docs/formats/envelope.md, section 3, accepted only in canonical form
(Go: envelope.ParseKeyRef), so one key has one spelling and references compare byte for byte.
"""
import ipaddress
import re
from dataclasses import dataclass

SCHEME_LOCAL = "local"
SCHEME_KMS = "kms"
SCHEME_RECIPIENT = "recipient"
KEM_X25519 = "x25519"
KEM_MLKEM768X25519 = "mlkem768x25519"
KEMS = (KEM_MLKEM768X25519, KEM_X25519)
_KEM_DISPLAY = {KEM_X25519: "X25519", KEM_MLKEM768X25519: "ML-KEM-768 + X25519"}
MAX_KEY_REF_LEN = 1024
MAX_KEY_NAME_LEN = 256

_LOWER_HEX32 = re.compile(r"[0-9a-f]{32}")
_LABEL = re.compile(r"[a-z0-9-]{1,63}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class KeyRef:
    """A parsed key reference. ``str(ref)`` is its canonical form."""

    scheme: str
    key_id: str = ""  # local and recipient: 32 lowercase hex digits
    host: str = ""  # kms: DNS name, IPv4, or IPv6 without brackets
    port: int = 0  # kms: 0 when absent
    name: str = ""  # kms: key name
    version: int = 0  # kms: 0 when absent (the newest version)
    kem: str = ""  # recipient: "mlkem768x25519" or "x25519"

    def __str__(self):
        if self.scheme == SCHEME_LOCAL:
            return "local:" + self.key_id
        if self.scheme == SCHEME_RECIPIENT:
            return "recipient:" + self.kem + ":" + self.key_id
        if self.scheme == SCHEME_KMS:
            host = f"[{self.host}]" if ":" in self.host else self.host
            s = "kms://" + host
            if self.port:
                s += f":{self.port}"
            s += "/" + self.name
            if self.version:
                s += f"@{self.version}"
            return s
        return "invalid:" + self.scheme

    def describe(self):
        """A phrase for messages, as Go's KeyRef.Describe."""
        if self.scheme == SCHEME_LOCAL:
            return "local key " + self.key_id
        if self.scheme == SCHEME_RECIPIENT:
            return f"recipient key {self.key_id} ({kem_display(self.kem)})"
        return "key-service key " + str(self)

    def with_version(self, version):
        return KeyRef(self.scheme, self.key_id, self.host, self.port, self.name, version, self.kem)

    def same_key(self, other):
        """Whether other names the same key, ignoring a kms:// version."""
        if self.scheme != other.scheme:
            return False
        if self.scheme in (SCHEME_LOCAL, SCHEME_RECIPIENT):
            return (self.kem, self.key_id) == (other.kem, other.key_id)
        return (self.host, self.port, self.name) == (other.host, other.port, other.name)


def kem_display(kem):
    """The KEM as people write it, for messages (Go: envelope.KEMDisplay)."""
    return _KEM_DISPLAY.get(kem, kem)


def parse(s):
    """Parse and validate a key reference; raise ValueError unless it is canonical."""
    if not isinstance(s, str):
        raise ValueError(f"key reference must be a string, not {type(s).__name__}")
    if len(s.encode("utf-8", "surrogatepass")) > MAX_KEY_REF_LEN:
        raise ValueError(f"key reference longer than {MAX_KEY_REF_LEN} bytes")
    if s.startswith("local:"):
        kid = s[len("local:"):]
        if not _LOWER_HEX32.fullmatch(kid):
            raise ValueError(f"key reference {s!r}: local key id must be 32 lowercase hex digits")
        ref = KeyRef(SCHEME_LOCAL, key_id=kid)
    elif s.startswith("recipient:"):
        kem, sep, kid = s[len("recipient:"):].partition(":")
        if not sep:
            raise ValueError(f"key reference {s!r}: want recipient:KEM:ID")
        if kem not in KEMS:
            raise ValueError(f"key reference {s!r}: unknown recipient key type {kem!r} "
                             f"(want {' or '.join(KEMS)})")
        if not _LOWER_HEX32.fullmatch(kid):
            raise ValueError(f"key reference {s!r}: recipient key id must be 32 lowercase hex digits")
        ref = KeyRef(SCHEME_RECIPIENT, key_id=kid, kem=kem)
    elif s.startswith("kms://"):
        rest = s[len("kms://"):]
        slash = rest.find("/")
        if slash < 0:
            raise ValueError(f"key reference {s!r}: missing /KEY after the host")
        hostport, path = rest[:slash], rest[slash + 1:]
        try:
            host, port = _parse_host_port(hostport)
        except ValueError as e:
            raise ValueError(f"key reference {s!r}: {e}") from None
        name, at, ver = path.partition("@")
        if not valid_key_name(name):
            raise ValueError(f"key reference {s!r}: key name must be 1-256 characters: segments of "
                             "A-Z a-z 0-9 . _ - separated by single slashes")
        version = 0
        if at:
            if not _DIGITS.fullmatch(ver) or ver[0] == "0" or int(ver) > 0xFFFFFFFF:
                raise ValueError(f"key reference {s!r}: version must be a decimal number from 1 to 4294967295")
            version = int(ver)
        ref = KeyRef(SCHEME_KMS, host=host, port=port, name=name, version=version)
    else:
        raise ValueError(f"key reference {s!r}: must start with local:, recipient: or kms://")
    if str(ref) != s:
        raise ValueError(f"key reference {s!r} is not in canonical form ({str(ref)!r})")
    return ref


def _parse_host_port(hp):
    port = ""
    if hp.startswith("["):
        end = hp.find("]")
        if end < 0:
            raise ValueError("unterminated [IPv6] host")
        host = hp[1:end]
        if not _canonical_ipv6(host):
            raise ValueError(f"{host!r} is not an IPv6 address in canonical (RFC 5952) form")
        rest = hp[end + 1:]
        if rest:
            if rest[0] != ":":
                raise ValueError(f"unexpected {rest!r} after host")
            port = rest[1:]
            if not port:
                raise ValueError("empty port")
    else:
        host, colon, p = hp.partition(":")
        if colon:
            port = p
            if not port:
                raise ValueError("empty port")
        if not _valid_host_name(host):
            raise ValueError(f"invalid host {host!r}")
    n = 0
    if port:
        if not _DIGITS.fullmatch(port) or port[0] == "0" or not 1 <= int(port) <= 65535:
            raise ValueError("port must be a number from 1 to 65535")
        n = int(port)
    return host.lower(), n


def _canonical_ipv6(host):
    if "%" in host or not host.isascii():
        return False
    try:
        ip = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    if ip.ipv4_mapped is not None:
        return False  # Go: an IPv4 address in IPv6 form is never canonical here
    return ip.compressed == host


def _valid_host_name(h):
    if not h or len(h) > 253:
        return False
    for label in h.split("."):
        if not _LABEL.fullmatch(label) or label[0] == "-" or label[-1] == "-":
            return False
    return True


def valid_key_name(n):
    """1-256 characters: segments of A-Z a-z 0-9 . _ - separated by single slashes, no . or .."""
    if not n or len(n) > MAX_KEY_NAME_LEN:
        return False
    for seg in n.split("/"):
        if seg in ("", ".", "..") or not _SEGMENT.fullmatch(seg):
            return False
    return True
