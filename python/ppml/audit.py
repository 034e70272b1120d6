"""The key service's audit log, verified offline (docs/formats/audit-log.md; Go: package audit).

- ``Entry``: an audit entry, its canonical encoding (the Merkle leaf) and strict decoding;
- ``TreeHead``: a signed tree head; ``verify()`` checks its signature with the public key;
- ``verify_export(data, public_key, trusted=())``: every check of Go's audit.VerifyExport, with
  the same problem kinds, entry indices and line numbers; raises AuditTamperError;
- ``verify_trail(data, public_key, trusted=(), keys=(), tenant="")``: every check of Go's
  audit.VerifyTrail on a trail export (``ppml audit export --key``/``--tenant``): the owner's
  trails, proven complete up to a signed tree head; ``verify_any`` takes either kind;
- ``verify_receipt`` and ``verify_consistency``: inclusion and consistency proofs against
  signed tree heads (what ``ppml audit prove`` checks).

Format 2 (docs/formats/audit-log.md): entries about a tenant carry their trail's chain fields
(``key_seq``, ``key_slot``, ``key_chain``) and tree heads commit to the chain table
(``chains``, ``chain_root``); ``verify_export`` replays the table and checks both, as Go does.
"""
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from . import gojson, merkle
from .errors import AuditTamperError, VerificationError
from .gojson import GoJSONError

EXPORT_FORMAT = "ppml-audit-log"
EXPORT_VERSION = 2  # read: 1 and 2
MAX_ENTRY_SIZE = 64 << 10
MAX_HEADER_SIZE = 16 << 20
ALG_ECDSA_P256 = "ecdsa-p256-sha256"
ALG_ED25519 = "ed25519"

# Problem kinds (Go: audit.Problem*).
MALFORMED_EXPORT = "malformed_export"
BAD_SIGNATURE = "bad_signature"
MALFORMED_ENTRY = "malformed_entry"
MODIFIED_ENTRY = "modified_entry"
DELETED_ENTRY = "deleted_entry"
REORDERED = "reordered"
TRUNCATED = "truncated"
EXTRA_ENTRY = "extra_entry"
INCONSISTENT_HEAD = "inconsistent_tree_head"
BROKEN_CHAIN = "broken_chain"
MISSING_TRAIL = "missing_trail"

# (JSON name, kind) in canonical order; kinds: u64, u32, hex, time, str, bool.
_ENTRY_FIELDS = [
    ("index", "u64"), ("prev", "hex"), ("time", "time"), ("type", "str"), ("tenant", "str"), ("actor", "str"),
    ("key", "str"), ("key_version", "u32"), ("job_digest", "hex"), ("platform", "str"), ("measurement", "hex"),
    ("signer", "hex"), ("tcb_status", "str"), ("insecure", "bool"), ("decision", "str"), ("rule", "str"),
    ("field", "str"), ("reason", "str"), ("request_id", "str"), ("key_seq", "u64"), ("key_slot", "u64"), ("key_chain", "hex"),
]
_ALWAYS = {"index", "time", "type"}  # no omitempty in Go


@dataclass
class Entry:
    """One audit entry. Byte fields (prev, job_digest, measurement, signer) are bytes; time is
    its canonical RFC 3339 text in UTC."""

    index: int = 0
    prev: bytes = b""
    time: str = "0001-01-01T00:00:00Z"
    type: str = ""
    tenant: str = ""
    actor: str = ""
    key: str = ""
    key_version: int = 0
    job_digest: bytes = b""
    platform: str = ""
    measurement: bytes = b""
    signer: bytes = b""
    tcb_status: str = ""
    insecure: bool = False
    decision: str = ""
    rule: str = ""
    field: str = ""
    reason: str = ""
    request_id: str = ""
    key_seq: int = 0
    key_slot: int = 0
    key_chain: bytes = b""

    def encode(self):
        """The canonical encoding: the exact bytes hashed into the log (Go: Entry.Encode)."""
        parts = []
        for name, kind in _ENTRY_FIELDS:
            v = getattr(self, name)
            if name not in _ALWAYS and not v:
                continue
            if kind in ("u64", "u32"):
                s = str(int(v))
            elif kind == "hex":
                s = '"' + bytes(v).hex() + '"'
            elif kind == "bool":
                s = "true"
            elif kind == "time":
                s = '"' + gojson.format_time(*gojson.parse_time(v)) + '"'
            else:
                s = gojson.encode_string(v)
            parts.append(f'"{name}":{s}')
        b = ("{" + ",".join(parts) + "}").encode("utf-8")
        if len(b) > MAX_ENTRY_SIZE:
            raise ValueError(f"entry of {len(b)} bytes exceeds {MAX_ENTRY_SIZE}")
        return b

    @classmethod
    def from_json(cls, obj, strict=False):
        """An entry from a parsed JSON object (gojson) with Go's decoding rules."""
        fs = gojson.fields(obj, {n for n, _ in _ENTRY_FIELDS}, strict=strict)
        e = cls()
        for name, kind in _ENTRY_FIELDS:
            if name not in fs:
                continue
            v = fs[name]
            if kind == "u64":
                v = gojson.as_uint(v, 64, name)
            elif kind == "u32":
                v = gojson.as_uint(v, 32, name)
            elif kind == "hex":
                v = gojson.as_hex(v, name)
            elif kind == "time":
                v = gojson.canonical_time(v, name) if v is not None else e.time
            elif kind == "bool":
                v = gojson.as_bool(v, name)
            else:
                v = gojson.as_str(v, name)
            setattr(e, name, v)
        return e

    @classmethod
    def decode(cls, raw):
        """Parse an encoded entry strictly (Go: audit.DecodeEntry): unknown fields, trailing
        data and non-canonical encodings are errors (VerificationError)."""
        raw = bytes(raw)
        if len(raw) > MAX_ENTRY_SIZE:
            raise VerificationError(f"entry of {len(raw)} bytes exceeds {MAX_ENTRY_SIZE}")
        try:
            e = cls.from_json(gojson.loads(raw), strict=True)
        except GoJSONError as err:
            raise VerificationError(f"not a valid entry: {err}") from None
        if not e.type:
            raise VerificationError("not a valid entry: no type")
        try:
            again = e.encode()
        except ValueError as err:
            raise VerificationError(str(err)) from None
        if again != raw:
            raise VerificationError("entry is not in canonical form (fields reordered, reformatted or re-encoded)")
        return e

    def leaf_hash(self):
        return merkle.leaf_hash(self.encode())


@dataclass
class TreeHead:
    """A signed statement of the log's size and root hash."""

    log_id: bytes
    size: int
    root_hash: bytes
    timestamp: str  # canonical RFC 3339 (UTC)
    key_id: bytes
    algorithm: str
    signature: bytes
    chains: int = 0  # format 2: the chain table's size and root
    chain_root: bytes = b""

    _FIELDS = ("log_id", "size", "root_hash", "chains", "chain_root", "timestamp", "key_id", "algorithm", "signature")

    @property
    def v2(self):
        return bool(self.chain_root)

    @classmethod
    def from_json(cls, obj, strict=False):
        """A tree head from parsed JSON (gojson), str or bytes, with Go's decoding rules."""
        if isinstance(obj, (str, bytes, bytearray)):
            obj = gojson.loads(obj)
        fs = gojson.fields(obj, set(cls._FIELDS), strict=strict)
        return cls(
            log_id=gojson.as_hex(fs.get("log_id"), "log_id"),
            size=gojson.as_uint(fs.get("size"), 64, "size"),
            root_hash=gojson.as_hex(fs.get("root_hash"), "root_hash"),
            timestamp=gojson.canonical_time(fs.get("timestamp"), "timestamp"),
            key_id=gojson.as_hex(fs.get("key_id"), "key_id"),
            algorithm=gojson.as_str(fs.get("algorithm"), "algorithm"),
            signature=gojson.as_hex(fs.get("signature"), "signature"),
            chains=gojson.as_uint(fs.get("chains"), 64, "chains"),
            chain_root=gojson.as_hex(fs.get("chain_root"), "chain_root"),
        )

    def to_json(self):
        d = {"log_id": self.log_id.hex(), "size": self.size, "root_hash": self.root_hash.hex()}
        if self.chains:
            d["chains"] = self.chains
        if self.chain_root:
            d["chain_root"] = self.chain_root.hex()
        d.update({"timestamp": self.timestamp, "key_id": self.key_id.hex(), "algorithm": self.algorithm,
                  "signature": self.signature.hex()})
        return d

    def message(self):
        """The signed bytes (docs/formats/audit-log.md, "Signed tree head"): v2 with the chain
        table when the head has a chain root, v1 otherwise."""
        chains = f"chains {self.chains}\nchain_root {self.chain_root.hex()}\n" if self.v2 else ""
        return (f"ppml audit tree head v{2 if self.v2 else 1}\n"
                f"log_id {self.log_id.hex()}\nsize {self.size}\nroot_hash {self.root_hash.hex()}\n{chains}"
                f"timestamp {self.timestamp}\nkey_id {self.key_id.hex()}\nalgorithm {self.algorithm}\n").encode()

    def verify(self, public_key):
        """Check the signature with the tree-head public key; raise VerificationError."""
        pub = load_public_key(public_key)
        alg = _algorithm_of(pub)
        kid = key_id(pub)
        if self.algorithm != alg:
            raise VerificationError(f'tree head is signed with "{self.algorithm}", the public key is for "{alg}"')
        if self.key_id != kid:
            raise VerificationError(f"tree head was signed by key {self.key_id.hex()}, not by the given public key {kid.hex()}")
        if len(self.root_hash) != 32:
            raise VerificationError(f"tree head root hash is {len(self.root_hash)} bytes, want 32")
        if self.v2 and len(self.chain_root) != 32:
            raise VerificationError(f"tree head chain root is {len(self.chain_root)} bytes, want 32")
        if not self.v2 and self.chains:
            raise VerificationError("tree head counts chains but has no chain root")
        try:
            if alg == ALG_ECDSA_P256:
                pub.verify(self.signature, self.message(), ec.ECDSA(hashes.SHA256()))
            else:
                pub.verify(self.signature, self.message())
        except InvalidSignature:
            raise VerificationError("tree head signature is not valid") from None


def load_public_key(key):
    """A tree-head public key from PEM (as /v1/audit/public-key serves it) or a key object."""
    if isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        return key
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, (bytes, bytearray)):
        if b"-----BEGIN PUBLIC KEY-----" not in key:
            raise VerificationError("audit public key: want a PEM PUBLIC KEY block")
        try:
            return serialization.load_pem_public_key(bytes(key))
        except ValueError as e:
            raise VerificationError(f"audit public key: {e}") from None
    raise TypeError(f"cannot use {type(key).__name__} as a tree-head public key")


def _algorithm_of(pub):
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if not isinstance(pub.curve, ec.SECP256R1):
            raise VerificationError("audit: ECDSA tree head keys must be P-256")
        return ALG_ECDSA_P256
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return ALG_ED25519
    raise VerificationError(f"audit: unsupported tree head key type {type(pub).__name__} (want ECDSA P-256 or Ed25519)")


def key_id(pub):
    """SHA-256 of the key's PKIX SubjectPublicKeyInfo (DER)."""
    der = load_public_key(pub).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


@dataclass
class Problem:
    kind: str
    index: int  # -1 when no single entry is concerned
    line: int  # 1-based export line, 0 for none
    detail: str

    def __str__(self):
        s = self.kind
        if self.index >= 0:
            s += f" at entry {self.index}"
        if self.line > 0:
            s += f" (line {self.line})"
        return s + ": " + self.detail

    def to_json(self):
        d = {"kind": self.kind, "index": self.index, "detail": self.detail}
        if self.line:
            d["line"] = self.line
        return d


@dataclass
class Result:
    tree_head: "TreeHead | None" = None
    entries: int = 0
    problems: list = field(default_factory=list)
    trails: list = field(default_factory=list)  # ChainHead of each verified trail (verify_trail)

    @property
    def ok(self):
        return not self.problems


@dataclass
class _Record:
    line: int
    index: int
    leaf: bytes
    prev: bytes
    entry: "Entry | None" = None  # when it decoded strictly


class _Verifier:
    def __init__(self):
        self.res = Result()
        self._seen = set()

    def add(self, kind, index, line, detail):
        k = (kind, index)
        if index >= 0 and k in self._seen:
            return
        self._seen.add(k)
        self.res.problems.append(Problem(kind, index, line, detail))


def _split_lines(data):
    """Lines as Go's bufio line reader yields them: split at \\n, a final empty piece dropped."""
    parts = bytes(data).split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def verify_export(data, public_key, trusted=()):
    """Verify an exported audit log (Go: audit.VerifyExport). ``data`` is the export's bytes
    (or a binary file object), ``trusted`` tree heads kept from earlier verifications. Returns
    the Result when everything verifies; raises AuditTamperError listing every problem."""
    if hasattr(data, "read"):
        data = data.read()
    res = check_export(data, public_key, trusted)
    if res.problems:
        raise AuditTamperError(res.problems)
    return res


def check_export(data, public_key, trusted=()):
    """verify_export without raising: the Result lists the problems (empty when it verifies)."""
    v = _Verifier()
    res = v.res
    lines = _split_lines(data)
    if not lines:
        v.add(MALFORMED_EXPORT, -1, 1, "the export is empty")
        return res
    hdr_line = lines[0]
    if len(hdr_line) > MAX_HEADER_SIZE:
        v.add(MALFORMED_EXPORT, -1, 1, f"header line exceeds {MAX_HEADER_SIZE} bytes")
        return res
    try:
        fs = gojson.fields(gojson.loads(hdr_line, trailing_ok=True), {"format", "version", "tree_head", "checkpoints"},
                           strict=True)
        fmt = gojson.as_str(fs.get("format"), "format")
        ver = gojson.as_int(fs.get("version"), "version")
        head = TreeHead.from_json(fs["tree_head"], strict=True) if fs.get("tree_head") is not None else None
        cps_raw = fs.get("checkpoints")
        if cps_raw is not None and not isinstance(cps_raw, list) or isinstance(cps_raw, gojson._Obj):
            raise GoJSONError("checkpoints: want an array")
        cps = [None if c is None else TreeHead.from_json(c, strict=True) for c in (cps_raw or [])]
    except GoJSONError as e:
        v.add(MALFORMED_EXPORT, -1, 1, f"header is not valid: {e}")
        return res
    if fmt != EXPORT_FORMAT or not 1 <= ver <= EXPORT_VERSION:
        v.add(MALFORMED_EXPORT, -1, 1, f'header says format "{fmt}" version {ver}, want "{EXPORT_FORMAT}" version 1 to {EXPORT_VERSION}')
        return res
    if head is None:
        v.add(MALFORMED_EXPORT, -1, 1, "header has no tree head")
        return res
    res.tree_head = head
    try:
        head.verify(public_key)
    except VerificationError as e:
        v.add(BAD_SIGNATURE, -1, 1, f"tree head (size {head.size}): {e}")
        return res
    checkpoints = []
    for i, c in enumerate(cps):
        if c is None:
            v.add(MALFORMED_EXPORT, -1, 1, f"checkpoint {i + 1} is null")
            continue
        try:
            c.verify(public_key)
        except VerificationError as e:
            v.add(BAD_SIGNATURE, -1, 1, f"checkpoint {i + 1} (size {c.size}): {e}")
            continue
        if c.log_id != head.log_id:
            v.add(INCONSISTENT_HEAD, -1, 1, f"checkpoint {i + 1} is of log {c.log_id.hex()}, the tree head of log {head.log_id.hex()}")
            continue
        if c.size > head.size:
            v.add(INCONSISTENT_HEAD, -1, 1, f"checkpoint {i + 1} covers {c.size} entries, more than the tree head's {head.size}")
            continue
        checkpoints.append(c)

    recs = []
    for line_no, raw in enumerate(lines[1:], start=2):
        res.entries += 1
        if len(raw) > MAX_ENTRY_SIZE:
            v.add(MALFORMED_ENTRY, -1, line_no, f"line exceeds {MAX_ENTRY_SIZE} bytes")
            continue
        try:
            loose = gojson.fields(gojson.loads(raw), {"index", "prev"})
            idx = gojson.as_uint(loose["index"], 64, "index") if loose.get("index") is not None else None
            prev_s = gojson.as_str(loose.get("prev"), "prev")
        except GoJSONError:
            idx = None
        if idx is None:
            v.add(MALFORMED_ENTRY, -1, line_no, "line is not an audit entry (it has no index or is not JSON)")
            continue
        rec = _Record(line_no, idx, merkle.leaf_hash(raw), gojson.hex_prefix(prev_s))
        try:
            rec.entry = Entry.decode(raw)
        except VerificationError as e:
            v.add(MODIFIED_ENTRY, idx, line_no, str(e))
        recs.append(rec)

    by_index = {}
    max_seen, any_seen = 0, False
    for rec in recs:
        if rec.index >= head.size:
            v.add(EXTRA_ENTRY, rec.index, rec.line, f"entry {rec.index} is beyond the {head.size} entries the signed tree head covers")
            continue
        if rec.index in by_index:
            v.add(EXTRA_ENTRY, rec.index, rec.line, f"a second entry {rec.index} (the first is on line {by_index[rec.index].line})")
            continue
        if any_seen and rec.index < max_seen:
            v.add(REORDERED, rec.index, rec.line, f"entry {rec.index} comes after entry {max_seen}")
        if not any_seen or rec.index > max_seen:
            max_seen = rec.index
        any_seen = True
        by_index[rec.index] = rec

    first_missing = head.size
    i = 0
    while i < head.size:
        if i in by_index:
            i += 1
            continue
        j = i
        while j < head.size and j not in by_index:
            j += 1
        first_missing = min(first_missing, i)
        if j == head.size:
            last = f"entry {i - 1}" if i > 0 else "no entry"
            v.add(TRUNCATED, i, 0, f"the export ends after {last} but the signed tree head covers {head.size} entries: "
                                   f"entries {i} to {head.size - 1} are missing")
        elif j == i + 1 and i == 0:
            v.add(DELETED_ENTRY, 0, by_index[j].line, "entry 0 is missing (the export starts at entry 1)")
        elif j == i + 1:
            v.add(DELETED_ENTRY, i, by_index[j].line, f"entry {i} is missing (entry {j} follows entry {i - 1})")
        else:
            v.add(DELETED_ENTRY, i, by_index[j].line, f"entries {i} to {j - 1} are missing")
        i = j

    def link_ok(i):
        rec = by_index.get(i)
        if rec is None:
            return False, False
        if i == 0:
            return len(rec.prev) == 0, True
        p = by_index.get(i - 1)
        if p is None:
            return False, False
        return rec.prev == p.leaf, True

    leaf_at = {rec.leaf: i for i, rec in by_index.items()}
    link_problems = 0
    i = 0
    while i < head.size:
        ok, known = link_ok(i)
        if not known or ok:
            i += 1
            continue
        link_problems += 1
        next_ok, next_known = link_ok(i + 1)
        k = leaf_at.get(by_index[i].prev)
        links_earlier = k is not None
        if i == 0:
            v.add(MODIFIED_ENTRY, 0, by_index[0].line, "entry 0 was changed: the first entry records a predecessor")
        elif links_earlier and k + 1 < i:
            line = by_index[k + 1].line if (k + 1) in by_index else by_index[i].line
            v.add(EXTRA_ENTRY, k + 1, line, f"entries {k + 1} to {i - 1} were inserted: entry {i} links directly to entry {k}")
        elif next_known and not next_ok and not links_earlier:
            v.add(MODIFIED_ENTRY, i, by_index[i].line, f"entry {i} was changed, or an entry before it deleted and the rest "
                                                       f"renumbered: its link matches no entry of the export and entry "
                                                       f"{i + 1}'s link to it does not match")
            i += 1
        elif next_known and not next_ok:
            v.add(MODIFIED_ENTRY, i, by_index[i].line, f"entry {i} was changed: its link to entry {i - 1} is wrong and "
                                                       f"entry {i + 1}'s link to it does not match")
            i += 1
        else:
            v.add(MODIFIED_ENTRY, i - 1, by_index[i - 1].line, f"entry {i - 1} was changed: entry {i} recorded a different hash for it")
        i += 1

    wanted = {head.size} | {c.size for c in checkpoints} | {t.size for t in _trusted(trusted)}
    roots = {0: merkle.EMPTY_ROOT}
    rng = merkle.Roots()
    for i in range(first_missing):
        rng.append(by_index[i].leaf)
        if i + 1 in wanted:
            roots[i + 1] = rng.root()

    checkpoints.sort(key=lambda c: c.size)
    last_good, first_bad = 0, head.size
    for c in checkpoints:
        r = roots.get(c.size)
        if r is None:
            continue
        if r == c.root_hash:
            if last_good < c.size <= first_bad:
                last_good = c.size
        elif c.size < first_bad:
            first_bad = c.size
    head_root = roots.get(head.size)
    head_ok = head_root is not None and head_root == head.root_hash
    if head_root is not None and not head_ok and head.size == 0:
        v.add(INCONSISTENT_HEAD, -1, 1, "the tree head covers no entry but its root is not the empty tree's")
    if head_root is not None and not head_ok and head.size > 0 and link_problems == 0 and first_missing == head.size:
        if last_good >= first_bad:
            v.add(INCONSISTENT_HEAD, -1, 1, f"the signing key certified two different roots for the first {first_bad} entries")
        elif first_bad - last_good == 1:
            i = last_good
            v.add(MODIFIED_ENTRY, i, by_index[i].line, f"entry {i} was changed: the entries up to it match a signed tree "
                                                       "head, the ones up to and including it do not")
        else:
            last = first_bad - 1
            v.add(MODIFIED_ENTRY, last, by_index[last].line,
                  f"the entries do not hash to the signed root of size {first_bad} although every link between them "
                  f"holds: entry {last} was changed, or entries {last_good} to {last} were rewritten together (entries "
                  f"before {last_good} match a signed tree head)")
    if head_ok:
        for c in checkpoints:
            r = roots.get(c.size)
            if r is not None and r != c.root_hash:
                v.add(INCONSISTENT_HEAD, -1, 1, f"the signing key certified two different histories: the checkpoint of "
                                                f"size {c.size} does not match the entries that the current tree head certifies")

    for n, t in enumerate(_trusted(trusted), start=1):
        try:
            t.verify(public_key)
        except VerificationError as e:
            v.add(BAD_SIGNATURE, -1, 0, f"trusted tree head {n} (size {t.size}): {e}")
            continue
        if t.log_id != head.log_id:
            v.add(INCONSISTENT_HEAD, -1, 0, f"trusted tree head {n} is of log {t.log_id.hex()}, this export of log {head.log_id.hex()}")
        elif t.size > head.size:
            v.add(INCONSISTENT_HEAD, -1, 0, f"trusted tree head {n} covers {t.size} entries but this export's tree head only "
                                            f"{head.size}: the log was truncated or rolled back (entries {head.size} to "
                                            f"{t.size - 1} are gone)")
        else:
            r = roots.get(t.size)
            if r is not None and r != t.root_hash:
                v.add(INCONSISTENT_HEAD, -1, 0, f"the first {t.size} entries do not match trusted tree head {n}: the log "
                                                f"was rewritten before entry {t.size}")

    if not res.problems:
        heads = [(head, 1)] + [(c, 1) for c in checkpoints] + [(t, 0) for t in _trusted(trusted)]
        _verify_chains(v, by_index, head.size, heads)

    res.problems.sort(key=lambda p: p.index)  # stable, as Go's SortStableFunc
    return res


def _trusted(trusted):
    out = []
    for t in trusted or ():
        if t is None:
            continue
        out.append(t if isinstance(t, TreeHead) else TreeHead.from_json(t))
    return out


def verify_receipt(entry, index, proof, tree_head, public_key):
    """Check a receipt: the tree head's signature, then the inclusion of the encoded entry at
    ``index`` (Go: client.AuditReceipt). ``entry`` is the encoded entry (bytes) or an Entry.
    Returns the decoded Entry; raises VerificationError."""
    head = tree_head if isinstance(tree_head, TreeHead) else TreeHead.from_json(tree_head)
    head.verify(public_key)
    raw = entry.encode() if isinstance(entry, Entry) else bytes(entry)
    try:
        merkle.verify_inclusion(index, head.size, merkle.leaf_hash(raw), [bytes(p) for p in proof], head.root_hash)
    except VerificationError as e:
        raise VerificationError(f"audit: entry {index} is not in the tree of size {head.size}: {e}") from None
    e = Entry.decode(raw)
    if e.index != index:
        raise VerificationError(f"receipt: entry says index {e.index}, asked for {index}")
    return e


def verify_receipt_document(doc, public_key):
    """Verify a receipt as the key service sends it (GET /v1/audit/proof, kept as bytes or
    parsed): {"index", "entry", "tree_head", "proof"}. Returns (Entry, TreeHead).

    The entry travels inside JSON (key services before format 2 escaped <, > and & in it); its
    canonical re-encoding is the exact leaf for any entry the log holds, and gives a different
    leaf, which fails the proof, for anything else."""
    if isinstance(doc, (bytes, bytearray, str)):
        doc = gojson.loads(doc)
    try:
        p = gojson.fields(doc, {"index", "entry", "tree_head", "proof"})
        index = gojson.as_uint(p.get("index"), 64, "index")
        head = TreeHead.from_json(p.get("tree_head"))
        entry = Entry.from_json(p.get("entry"), strict=True)
        proof = [gojson.as_hex(h, "proof") for h in (p.get("proof") or [])]
    except GoJSONError as e:
        raise VerificationError(f"receipt: {e}") from None
    try:
        raw = entry.encode()
    except ValueError as e:
        raise VerificationError(f"receipt: {e}") from None
    return verify_receipt(raw, index, proof, head, public_key), head


def verify_consistency(older, newer, proof, public_key=None):
    """Check that the tree head ``older`` is a prefix of ``newer`` (Go: audit.VerifyConsistency);
    with public_key, both signatures are checked first. Raises VerificationError."""
    older = older if isinstance(older, TreeHead) else TreeHead.from_json(older)
    newer = newer if isinstance(newer, TreeHead) else TreeHead.from_json(newer)
    if public_key is not None:
        older.verify(public_key)
        newer.verify(public_key)
    if older.log_id != newer.log_id:
        raise VerificationError("audit: tree heads are of different logs")
    if older.size > newer.size:
        raise VerificationError(f"audit: tree head of size {older.size} is newer than the one of size {newer.size}")
    try:
        merkle.verify_consistency(older.size, newer.size, [bytes(p) for p in proof], older.root_hash, newer.root_hash)
    except VerificationError as e:
        raise VerificationError(f"audit: tree of size {older.size} is not a prefix of the tree of size {newer.size}: {e}") from None


# --- Format 2: per-trail chains and the chain table ------------------------------------------

def chain_step(prev, leaf):
    """A trail's chain hash after the entry with RFC 6962 leaf hash ``leaf`` (Go: audit.ChainStep):
    SHA-256(0x02 || prev || leaf), prev = 32 zero bytes for the first entry."""
    return hashlib.sha256(b"\x02" + (prev if prev else bytes(32)) + bytes(leaf)).digest()


@dataclass
class ChainHead:
    """One trail's slot content in the chain table (Go: audit.ChainHead)."""

    tenant: str
    key: str
    count: int
    last: int
    chain: bytes

    def leaf(self):
        t, k = self.tenant.encode(), self.key.encode()
        return (b"ppml audit chain head v1\x00" + struct.pack(">H", len(t)) + t + struct.pack(">H", len(k)) + k
                + struct.pack(">QQ", self.count, self.last) + bytes(self.chain))

    def leaf_hash(self):
        return merkle.leaf_hash(self.leaf())

    def name(self):
        return f"tenant {self.tenant}" if not self.key else f"key {self.key} of tenant {self.tenant}"


def _trail_name(tenant, key):
    return ChainHead(tenant, key, 0, 0, b"").name()


def _ordinal(n):
    suf = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suf}"


class _ChainReplay:
    """The chain table rebuilt from a log's entries in index order (Go: audit.chainReplay)."""

    def __init__(self):
        self.trails = {}
        self.slots = []
        self.upgraded = -1

    def add(self, i, e, leaf):
        if not e.tenant:
            if e.key_seq or e.key_slot or e.key_chain:
                return f"entry {i} is about no tenant but carries chain fields"
            return ""
        tid = (e.tenant, e.key)
        t = self.trails.get(tid)
        if t is None:
            t = self.trails[tid] = {"slot": -1, "count": 0, "last": 0, "chain": b""}
        name = _trail_name(*tid)
        why = ""
        if not e.key_seq:
            if self.upgraded >= 0:
                why = (f"entry {i} about {name} has no chain fields although the log chains every such entry since "
                       f"entry {self.upgraded}")
            elif e.key_slot or e.key_chain:
                why = f"entry {i} about {name} has chain fields but no key_seq"
        else:
            if self.upgraded < 0:
                self.upgraded = i
            want_slot = t["slot"] if t["slot"] >= 0 else len(self.slots)
            if e.key_seq != t["count"] + 1:
                why = f"entry {i} says it is entry {e.key_seq} about {name}, but it is the {_ordinal(t['count'] + 1)}"
            elif e.key_chain != t["chain"]:
                why = f"entry {i} records a chain hash of {name} that the {t['count']} entries before it do not give"
            elif e.key_slot != want_slot:
                why = f"entry {i} puts {name} at slot {e.key_slot} of the chain table, which holds it at slot {want_slot}"
            if t["slot"] < 0:
                t["slot"] = len(self.slots)
                self.slots.append(tid)
        t["count"] += 1
        t["last"] = i
        t["chain"] = chain_step(t["chain"], leaf)
        return why

    def root(self):
        leaves = []
        for tid in self.slots:
            t = self.trails[tid]
            leaves.append(ChainHead(tid[0], tid[1], t["count"], t["last"], t["chain"]).leaf_hash())
        return merkle.root(leaves), len(leaves)


def _verify_chains(v, by_index, size, heads):
    at = {}
    for h, line in heads:
        if h.v2 and h.size <= size:
            at.setdefault(h.size, []).append((h, line))
    r = _ChainReplay()

    def check(n):
        if n not in at:
            return
        root, count = r.root()
        for h, line in at[n]:
            if h.chains != count or h.chain_root != root:
                v.add(INCONSISTENT_HEAD, -1, line, f"the tree head of size {n} commits to a chain table of {h.chains} trails "
                                                   f"(root {h.chain_root.hex()}) but its entries define {count} trails (root "
                                                   f"{root.hex()}): the server signed a wrong commitment to the trails' "
                                                   f"newest entries")

    check(0)
    for i in range(size):
        rec = by_index[i]
        why = r.add(i, rec.entry, rec.leaf)
        if why:
            v.add(BROKEN_CHAIN, i, rec.line, why)
        check(i + 1)


# --- Trail exports (format 2): an owner's trails, complete up to a signed tree head ----------

TRAIL_FORMAT = "ppml-audit-trail"
TRAIL_VERSION = 1
_MAX_TRAIL_NAME = 1024


@dataclass
class TrailProof:
    """One trail of a trail export's header (Go: audit.TrailProof): its chain head at the tree
    head, the chain head's inclusion proof in the chain table and the newest entry's in the log."""

    tenant: str
    key: str
    slot: int
    count: int
    last: int
    chain: bytes
    slot_proof: list
    last_proof: list

    _FIELDS = ("tenant", "key", "slot", "count", "last", "chain", "slot_proof", "last_proof")

    @classmethod
    def from_json(cls, obj):
        fs = gojson.fields(obj, set(cls._FIELDS), strict=True)
        return cls(tenant=gojson.as_str(fs.get("tenant"), "tenant"), key=gojson.as_str(fs.get("key"), "key"),
                   slot=gojson.as_uint(fs.get("slot"), 64, "slot"), count=gojson.as_uint(fs.get("count"), 64, "count"),
                   last=gojson.as_uint(fs.get("last"), 64, "last"), chain=gojson.as_hex(fs.get("chain"), "chain"),
                   slot_proof=_hex_list(fs.get("slot_proof"), "slot_proof"),
                   last_proof=_hex_list(fs.get("last_proof"), "last_proof"))

    @property
    def id(self):
        return (self.tenant, self.key)

    def head(self):
        return ChainHead(self.tenant, self.key, self.count, self.last, self.chain)


def _hex_list(v, what):
    if v is None:
        return []
    if not isinstance(v, list) or isinstance(v, gojson._Obj):
        raise GoJSONError(f"json: cannot unmarshal {gojson._kind(v)} into {what} of type []attest.Hex")
    return [gojson.as_hex(h, what) for h in v]


def _obj_list(v, what):
    if v is None:
        return []
    if not isinstance(v, list) or isinstance(v, gojson._Obj):
        raise GoJSONError(f"json: cannot unmarshal {gojson._kind(v)} into {what}")
    return v


def _chain_head_problem(h):
    """Why h cannot be a chain head (Go: ChainHead.Check), or ""."""
    if not h.tenant:
        return "chain head names no tenant"
    if len(h.tenant.encode("utf-8", "surrogateescape")) > _MAX_TRAIL_NAME or \
            len(h.key.encode("utf-8", "surrogateescape")) > _MAX_TRAIL_NAME:
        return f"chain head names longer than {_MAX_TRAIL_NAME} bytes"
    if h.count == 0:
        return "chain head of an empty trail"
    if h.last + 1 < h.count:
        return f"chain head says {h.count} entries but the newest is entry {h.last}"
    if len(h.chain) != 32:
        return f"chain hash is {len(h.chain)} bytes, want 32"
    return ""


def verify_trail(data, public_key, trusted=(), keys=(), tenant=""):
    """Verify a trail export (``ppml audit export --key NAME`` / ``--tenant NAME``; Go:
    audit.VerifyTrail) with nothing but the tree-head public key: the tree head's signature
    (format 2), each trail's chain head against the signed chain table, every entry line
    (canonical, about one of the trails, in log order), each trail's hash chain against its chain
    head (nothing changed, dropped, added or cut off at the end), the newest entry of each trail
    against the log's root, that the trails of ``keys`` and ``tenant`` are there, and that the
    tree head extends each ``trusted`` head (by the export's consistency proofs). Returns the
    Result (``result.trails``: the verified ChainHeads); raises AuditTamperError listing every
    problem, with Go's kinds, entry indices, lines and sentences."""
    if hasattr(data, "read"):
        data = data.read()
    res = check_trail(data, public_key, trusted, keys, tenant)
    if res.problems:
        raise AuditTamperError(res.problems)
    return res


def check_trail(data, public_key, trusted=(), keys=(), tenant=""):
    """verify_trail without raising: the Result lists the problems (empty when it verifies)."""
    if isinstance(keys, str):
        keys = [keys]
    v = _Verifier()
    res = v.res
    lines = _split_lines(data)
    if not lines:
        v.add(MALFORMED_EXPORT, -1, 1, "the export is empty")
        return res
    if len(lines[0]) > MAX_HEADER_SIZE:
        v.add(MALFORMED_EXPORT, -1, 1, f"header line exceeds {MAX_HEADER_SIZE} bytes")
        return res
    try:
        fs = gojson.fields(gojson.loads(lines[0], trailing_ok=True),
                           {"format", "version", "tree_head", "trails", "consistency"}, strict=True)
        fmt = gojson.as_str(fs.get("format"), "format")
        ver = gojson.as_int(fs.get("version"), "version")
        head = TreeHead.from_json(fs["tree_head"], strict=True) if fs.get("tree_head") is not None else None
        proofs = [None if p is None else TrailProof.from_json(p) for p in _obj_list(fs.get("trails"), "trails")]
        consistency = []
        for c in _obj_list(fs.get("consistency"), "consistency"):
            if c is None:
                consistency.append(None)
                continue
            cf = gojson.fields(c, {"from", "proof"}, strict=True)
            consistency.append((gojson.as_uint(cf.get("from"), 64, "from"), _hex_list(cf.get("proof"), "proof")))
    except GoJSONError as e:
        v.add(MALFORMED_EXPORT, -1, 1, f"header is not valid: {e}")
        return res
    if fmt != TRAIL_FORMAT or ver != TRAIL_VERSION:
        v.add(MALFORMED_EXPORT, -1, 1, f'header says format "{fmt}" version {ver}, want "{TRAIL_FORMAT}" version {TRAIL_VERSION}')
        return res
    if head is None:
        v.add(MALFORMED_EXPORT, -1, 1, "header has no tree head")
        return res
    res.tree_head = head
    try:
        head.verify(public_key)
    except VerificationError as e:
        v.add(BAD_SIGNATURE, -1, 1, f"tree head (size {head.size}): {e}")
        return res
    if not head.v2:
        v.add(MALFORMED_EXPORT, -1, 1, f"the tree head (size {head.size}) commits to no trails (it was signed by a key "
                                       "service older than audit format 2): it cannot prove a trail complete")
        return res

    # Each trail's chain head must be in the signed chain table.
    trails = {}
    for i, p in enumerate(proofs, start=1):
        if p is None:
            v.add(MALFORMED_EXPORT, -1, 1, f"trail {i} is null")
            continue
        ch = p.head()
        name = ch.name()
        why = _chain_head_problem(ch)
        if why:
            v.add(MALFORMED_EXPORT, -1, 1, f"trail {i} ({name}): {why}")
            continue
        if p.id in trails:
            v.add(MALFORMED_EXPORT, -1, 1, f"trail {i} ({name}) is listed twice")
            continue
        if p.last >= head.size:
            v.add(INCONSISTENT_HEAD, -1, 1, f"trail {i} ({name}) ends at entry {p.last}, beyond the {head.size} entries of the tree head")
            continue
        if p.slot >= head.chains:
            v.add(INCONSISTENT_HEAD, -1, 1, f"trail {i} ({name}) is at slot {p.slot} of a chain table of {head.chains} slots")
            continue
        try:
            merkle.verify_inclusion(p.slot, head.chains, ch.leaf_hash(), p.slot_proof, head.chain_root)
        except VerificationError as e:
            v.add(INCONSISTENT_HEAD, -1, 1, f"the signed tree head does not commit to {name} as exported ({p.count} "
                                            f"entries, the newest entry {p.last}): {e}")
            continue
        trails[p.id] = p

    # Entry lines: canonical, each about one of the trails, in log order.
    by_trail = {}
    prev_index = 0
    seen = {}
    for line_no, raw in enumerate(lines[1:], start=2):
        res.entries += 1
        if len(raw) > MAX_ENTRY_SIZE:
            v.add(MALFORMED_ENTRY, -1, line_no, f"line exceeds {MAX_ENTRY_SIZE} bytes")
            continue
        try:
            loose = gojson.fields(gojson.loads(raw), {"index"})
            idx = gojson.as_uint(loose["index"], 64, "index") if loose.get("index") is not None else None
        except GoJSONError:
            idx = None
        if idx is None:
            v.add(MALFORMED_ENTRY, -1, line_no, "line is not an audit entry (it has no index or is not JSON)")
            continue
        try:
            e = Entry.decode(raw)
        except VerificationError as err:
            v.add(MODIFIED_ENTRY, idx, line_no, str(err))
            continue
        tid = (e.tenant, e.key)
        if idx >= head.size:
            v.add(EXTRA_ENTRY, idx, line_no, f"entry {idx} is beyond the {head.size} entries the signed tree head covers")
            continue
        if idx in seen:
            v.add(EXTRA_ENTRY, idx, line_no, f"a second entry {idx} (the first is on line {seen[idx]})")
            continue
        if tid not in trails:
            if e.tenant:
                about = _trail_name(e.tenant, e.key)
            elif e.key:
                about = f"key {e.key} of no tenant"
            else:
                about = "no tenant"
            v.add(EXTRA_ENTRY, idx, line_no, f"entry {idx} is about {about}, which is not one of the export's trails")
            continue
        if seen and idx < prev_index:
            v.add(REORDERED, idx, line_no, f"entry {idx} comes after entry {prev_index}")
        seen[idx] = line_no
        prev_index = max(prev_index, idx)
        by_trail.setdefault(tid, []).append(_Record(line_no, idx, merkle.leaf_hash(raw), b"", e))

    for p in proofs:
        if p is None or trails.get(p.id) is not p:
            continue
        ls = sorted(by_trail.get(p.id, []), key=lambda r: r.index)
        ch = _verify_trail_chain(v, p, ls, head)
        if ch is not None:
            res.trails.append(ch)

    for k in keys:
        if not any(tid[1] == k for tid in trails):
            v.add(MISSING_TRAIL, -1, 1, f"the export holds no trail of key {k}")
    if tenant and (tenant, "") not in trails:
        v.add(MISSING_TRAIL, -1, 1, f"the export holds no trail of tenant {tenant}")
    _verify_trusted_by_proof(v, head, consistency, _trusted_list(trusted), public_key)

    res.problems.sort(key=lambda p: p.index)  # stable, as Go's SortStableFunc
    return res


def _trusted_list(trusted):
    # Unlike _trusted, keep None's place: Go numbers trusted heads by their position.
    return [t if t is None or isinstance(t, TreeHead) else TreeHead.from_json(t) for t in (trusted or ())]


def _verify_trail_chain(v, p, ls, head):
    """Walk one trail's entries against its signed chain head (Go: verifyTrailChain); only the
    first problem of a trail is reported, since everything after a break is unverifiable."""
    name = p.head().name()
    chain = b""
    chained = False
    for j, rec in enumerate(ls):
        e = rec.entry
        seq = j + 1
        if not e.key_seq:
            if chained:
                v.add(BROKEN_CHAIN, rec.index, rec.line, f"entry {rec.index} about {name} has no chain fields although an "
                                                         "earlier entry of the trail has")
                return None
        else:
            chained = True
            if e.key_seq > seq:
                v.add(DELETED_ENTRY, rec.index, rec.line, f"entries about {name} are missing before entry {rec.index}: it is "
                                                          f"the {_ordinal(e.key_seq)} of the trail, the export has {j} before it")
                return None
            if e.key_seq < seq:
                v.add(EXTRA_ENTRY, rec.index, rec.line, f"entry {rec.index} says it is the {_ordinal(e.key_seq)} about {name} "
                                                        f"but the export has {j} before it: entries were inserted")
                return None
            if e.key_chain != chain and j == 0:
                v.add(BROKEN_CHAIN, rec.index, rec.line, f"entry {rec.index} is the first about {name} but records a chain hash")
                return None
            if e.key_chain != chain:
                prev = ls[j - 1]
                v.add(MODIFIED_ENTRY, prev.index, prev.line, f"entry {prev.index} was changed: entry {rec.index}, the next "
                                                             f"about {name}, recorded a different chain hash")
                return None
            if e.key_slot != p.slot:
                v.add(BROKEN_CHAIN, rec.index, rec.line, f"entry {rec.index} puts {name} at slot {e.key_slot} of the chain "
                                                         f"table, the export's proof at slot {p.slot}")
                return None
        chain = chain_step(chain, rec.leaf)
    n = len(ls)
    if n < p.count and (n == 0 or ls[-1].index < p.last):
        end = f"entry {ls[-1].index}, the {_ordinal(n)}" if n else "no entry about it"
        v.add(TRUNCATED, p.last, 0, f"the newest entries about {name} are missing: the signed tree head says the trail has "
                                    f"{p.count} entries, the newest is entry {p.last}; the export has {end}")
        return None
    if n < p.count:
        v.add(DELETED_ENTRY, -1, 0, f"entries about {name} are missing: the signed tree head says the trail has {p.count} "
                                    f"entries, the export has {n}")
        return None
    if n > p.count:
        rec = ls[p.count]
        v.add(EXTRA_ENTRY, rec.index, rec.line, f"entry {rec.index} about {name} is beyond the {p.count} entries the signed "
                                                "tree head gives the trail")
        return None
    if chain != p.chain:
        rec = ls[-1]
        if chained:
            v.add(MODIFIED_ENTRY, rec.index, rec.line, f"entry {rec.index}, the newest about {name}, was changed: the "
                                                       "trail's chain hash differs from the signed one")
        else:
            v.add(MODIFIED_ENTRY, rec.index, rec.line, f"an entry about {name} up to entry {rec.index} was changed: the "
                                                       "trail's chain hash differs from the signed one (entries written "
                                                       "before format 2 carry no chain fields that could say which)")
        return None
    last = ls[-1]
    if last.index != p.last:
        v.add(INCONSISTENT_HEAD, last.index, last.line, f"the newest entry about {name} is entry {last.index}, the signed "
                                                        f"chain head says entry {p.last}")
        return None
    try:
        merkle.verify_inclusion(p.last, head.size, last.leaf, p.last_proof, head.root_hash)
    except VerificationError as e:
        v.add(INCONSISTENT_HEAD, p.last, last.line, f"the newest entry about {name} (entry {p.last}) is not in the signed "
                                                    f"log: {e}")
        return None
    return p.head()


def _verify_trusted_by_proof(v, head, items, trusted, public_key):
    """The tree head extends each trusted head, by the export's consistency proofs (Go:
    verifyTrustedByProof)."""
    for i, t in enumerate(trusted, start=1):
        if t is None:
            continue
        try:
            t.verify(public_key)
        except VerificationError as e:
            v.add(BAD_SIGNATURE, -1, 0, f"trusted tree head {i} (size {t.size}): {e}")
            continue
        if t.log_id != head.log_id:
            v.add(INCONSISTENT_HEAD, -1, 0, f"trusted tree head {i} is of log {t.log_id.hex()}, this export of log {head.log_id.hex()}")
            continue
        if t.size > head.size:
            signed = _seconds(t.timestamp)
            v.add(INCONSISTENT_HEAD, -1, 0, f"trusted tree head {i} covers {t.size} entries (signed {signed}) but this "
                                            f"export's tree head only {head.size}: the log is shorter than one you trusted, "
                                            f"it was truncated or rolled back (entries {head.size} to {t.size - 1} are gone)")
            continue
        if t.size == head.size:
            if t.root_hash != head.root_hash or (t.v2 and head.v2 and (t.chain_root != head.chain_root or t.chains != head.chains)):
                v.add(INCONSISTENT_HEAD, -1, 0, f"trusted tree head {i} and this export's tree head both cover {t.size} "
                                                "entries but differ: the log was forked")
            continue
        proof = None
        for c in items:
            if c is not None and c[0] == t.size:
                proof = c[1]  # the last one wins, as in Go
        if proof is None:
            v.add(INCONSISTENT_HEAD, -1, 0, f"the export holds no consistency proof from trusted tree head {i} (size "
                                            f"{t.size}): export it again giving that head (--trusted-head)")
            continue
        try:
            merkle.verify_consistency(t.size, head.size, proof, t.root_hash, head.root_hash)
        except VerificationError as e:
            v.add(INCONSISTENT_HEAD, -1, 0, f"the log does not extend trusted tree head {i} (size {t.size}): it was forked "
                                            f"or rewritten before entry {t.size} ({e})")


def _seconds(ts):
    """Go's t.UTC().Format("2006-01-02T15:04:05Z07:00"): RFC 3339 without fractional seconds."""
    t, _ = gojson.parse_time(ts)
    return gojson.format_time(t, 0)


def verify_any(data, public_key, trusted=(), keys=(), tenant=""):
    """Verify a whole-log export or a trail export, whichever ``data`` is (as ``ppml audit
    verify --file`` does): a trail export with verify_trail, a whole log with verify_export
    (``keys``/``tenant`` must then be empty)."""
    if hasattr(data, "read"):
        data = data.read()
    if export_format(data) == TRAIL_FORMAT:
        return verify_trail(data, public_key, trusted, keys, tenant)
    if keys or tenant:
        raise VerificationError("a whole-log export, not a trail: verify it without keys and tenant, or export a trail "
                                "(KeyService.audit_trail, ppml audit export --key)")
    return verify_export(data, public_key, trusted)


def export_format(data):
    """The format name in an export's header line ("" when there is none)."""
    line = bytes(data).split(b"\n", 1)[0]
    try:
        return gojson.as_str(gojson.fields(gojson.loads(line, trailing_ok=True), {"format"}).get("format"), "format")
    except GoJSONError:
        return ""
