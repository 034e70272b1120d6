"""Client of the ppml key service (docs/api/openapi.yaml; Go: package kms/client).

HTTPS with TLS 1.3 only. The server certificate is trusted by one of: a pinned SHA-256
fingerprint of the certificate (as ``ppml server`` prints it; compared in constant time, and it
replaces chain validation, as in the Go client), a CA bundle file, or the system roots.
Proxies and ~/.netrc are ignored (the Go client uses neither), redirects are not followed.
"""
import base64
import json
import os
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlparse

import requests
from requests.adapters import HTTPAdapter

from . import audit
from .errors import KeyServiceError, VerificationError

DEFAULT_PORT = 8443
MAX_ANSWER = 64 << 20


def server_url(host, port=0):
    """The https URL of a kms:// reference's host and port (Go: client.ServerURL)."""
    h = f"[{host}]" if ":" in host else host
    return f"https://{h}:{port or DEFAULT_PORT}"


class _TLS13Adapter(HTTPAdapter):
    def __init__(self, context, fingerprint):
        self._context = context
        self._fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, connections, maxsize, block=False, **kw):
        kw["ssl_context"] = self._context
        if self._fingerprint:
            kw["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block=block, **kw)


@dataclass
class Tenant:
    name: str
    role: str
    created: str


@dataclass
class TokenInfo:
    id: str
    tenant: str
    role: str
    description: str = ""
    created: str = ""
    revoked: bool = False
    token: str = ""  # the secret; only in the answer that issued it

    def __repr__(self):  # never print the secret
        return f"TokenInfo(id={self.id!r}, tenant={self.tenant!r}, role={self.role!r}, revoked={self.revoked})"


@dataclass
class Key:
    name: str
    tenant: str
    version: int
    versions: list
    policy: bool
    created: str


@dataclass
class DataKey:
    key: str
    version: int
    data_key: bytes
    wrapped: bytes

    def __repr__(self):  # never print the data key
        return f"DataKey(key={self.key!r}, version={self.version}, wrapped={len(self.wrapped)} bytes)"


class KeyService:
    """A connection to one key service.

    ``KeyService("https://kms.example:8443", token=..., fingerprint=...)``, or
    ``KeyService.from_env()`` with PPML_SERVER, PPML_TOKEN, PPML_SERVER_FINGERPRINT and
    PPML_CA_FILE as the CLI reads them. Method names follow the Go client; errors are
    KeyServiceError (status, code, message, denials).
    """

    def __init__(self, server, token="", fingerprint="", ca_file="", timeout=30.0):
        u = urlparse(server)
        if u.scheme != "https" or not u.netloc:
            raise ValueError(f"server {server!r}: want https://HOST[:PORT]")
        self.server = server.rstrip("/")
        self._token = token or ""
        self.timeout = timeout
        ctx = ssl.create_default_context(cafile=ca_file or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # urllib3 matches the host name (and IP addresses) against the certificate itself;
        # the context's own check would refuse IP-address hosts it gets no server name for.
        ctx.check_hostname = False
        fp = ""
        if fingerprint:
            fp = fingerprint.lower().replace(":", "")
            if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
                raise ValueError("server fingerprint: want 64 hex digits (SHA-256 of the certificate)")
            ctx.verify_mode = ssl.CERT_NONE
        elif ca_file and not os.path.exists(ca_file):
            raise ValueError(f"CA file {ca_file} does not exist")
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.mount("https://", _TLS13Adapter(ctx, fp))
        # requests' verify= decides the CA bundle urllib3 loads: only the given CA file, or the
        # system roots; none with a pin, which replaces chain validation (urllib3 then checks
        # the leaf certificate's SHA-256 with assert_fingerprint, in constant time).
        self._verify = False if fp else (ca_file or True)

    def __repr__(self):
        return f"KeyService({self.server!r})"

    @classmethod
    def from_env(cls, server=None, token=None):
        server = server or os.environ.get("PPML_SERVER", "")
        if not server:
            raise ValueError("give the key service as server= or in PPML_SERVER")
        return cls(server, token=token if token is not None else os.environ.get("PPML_TOKEN", ""),
                   fingerprint=os.environ.get("PPML_SERVER_FINGERPRINT", ""),
                   ca_file=os.environ.get("PPML_CA_FILE", ""))

    @classmethod
    def for_key_ref(cls, ref, token=None):
        """The service a kms:// reference names, configured from the environment as
        ``ppml encrypt --key kms://...`` does (PPML_TOKEN, PPML_SERVER_FINGERPRINT, PPML_CA_FILE)."""
        tok = token if token is not None else os.environ.get("PPML_TOKEN", "")
        if not tok:
            raise ValueError(f"key {ref} needs an owner API token in PPML_TOKEN")
        return cls(server_url(ref.host, ref.port), token=tok, fingerprint=os.environ.get("PPML_SERVER_FINGERPRINT", ""),
                   ca_file=os.environ.get("PPML_CA_FILE", ""))

    def close(self):
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport ----------------------------------------------------------------------------

    def _do(self, method, path, body=None, raw=False, content_type="application/json"):
        headers = {}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            with self._session.request(method, self.server + path, data=data, headers=headers, timeout=self.timeout,
                                       verify=self._verify, allow_redirects=False, stream=True) as r:
                content = r.raw.read(MAX_ANSWER + 1, decode_content=True)
                status = r.status_code
        except requests.exceptions.SSLError as e:
            raise KeyServiceError(0, "tls", f"{self.server}: TLS: {_reason(e)}") from None
        except requests.exceptions.RequestException as e:
            raise KeyServiceError(0, "unreachable", f"{self.server}: {_reason(e)}") from None
        if len(content) > MAX_ANSWER:
            raise KeyServiceError(status, "too_large", f"answer to {method} {path} larger than {MAX_ANSWER} bytes")
        if status // 100 != 2:
            try:
                e = json.loads(content)
                code, msg = e["code"], e.get("message", "")
                if not code:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise KeyServiceError(status, "http", content.decode("utf-8", "replace").strip()) from None
            raise KeyServiceError(status, code, msg, e.get("denials") or [])
        if raw:
            return content
        try:
            return json.loads(content)
        except ValueError:
            raise KeyServiceError(status, "bad_answer", f"bad answer to {method} {path}: not JSON") from None

    # -- operators and admins -------------------------------------------------------------------

    def status(self):
        return self._do("GET", "/v1/sys/status")

    def unseal(self, share):
        return self._do("POST", "/v1/sys/unseal", {"share": share})

    def create_tenant(self, name, role="owner"):
        return Tenant(**_pick(self._do("POST", "/v1/tenants", {"name": name, "role": role}), Tenant))

    def list_tenants(self):
        return [Tenant(**_pick(t, Tenant)) for t in self._do("GET", "/v1/tenants") or []]

    def create_token(self, tenant, description=""):
        body = {"tenant": tenant}
        if description:
            body["description"] = description
        return TokenInfo(**_pick(self._do("POST", "/v1/tokens", body), TokenInfo))

    def list_tokens(self):
        return [TokenInfo(**_pick(t, TokenInfo)) for t in self._do("GET", "/v1/tokens") or []]

    def revoke_token(self, token_id):
        return TokenInfo(**_pick(self._do("DELETE", "/v1/tokens/" + quote(token_id, safe="")), TokenInfo))

    # -- owners ---------------------------------------------------------------------------------

    def create_key(self, name):
        return Key(**_pick(self._do("POST", "/v1/keys", {"name": name}), Key))

    def rotate_key(self, name):
        return Key(**_pick(self._do("POST", "/v1/keys/rotate", {"name": name}), Key))

    def list_keys(self):
        return [Key(**_pick(k, Key)) for k in self._do("GET", "/v1/keys") or []]

    def set_policy(self, key, policy):
        """Set a key's release policy: a YAML or JSON document (str/bytes) or a dict."""
        if isinstance(policy, dict):
            policy = json.dumps(policy)
        if isinstance(policy, str):
            policy = policy.encode()
        return self._do("PUT", "/v1/policy?" + urlencode({"key": key}), bytes(policy))

    def get_policy(self, key):
        return self._do("GET", "/v1/policy?" + urlencode({"key": key}))

    def generate_data_key(self, key, aad=b""):
        """A fresh data key and its wrapped form bound to aad (audited as data_key)."""
        d = self._do("POST", "/v1/datakey", {"key": key, "aad": _b64(aad)})
        return DataKey(d["key"], d["version"], base64.b64decode(d["data_key"]), base64.b64decode(d["wrapped"]))

    def decrypt_data_key(self, key, wrapped, aad=b""):
        """Unwrap a data key of one of the caller's keys (audited as decrypt)."""
        d = self._do("POST", "/v1/decrypt", {"key": key, "wrapped": _b64(wrapped), "aad": _b64(aad)})
        return base64.b64decode(d["data_key"])

    def key(self, ref):
        """A KMSKey for a kms:// reference at this service."""
        from .keys import KMSKey
        return KMSKey(ref, service=self)

    # -- audit ----------------------------------------------------------------------------------

    def audit_list(self, key=None, start=0, limit=1000):
        """Entries of one key (owners must give one) or of the whole log (admin)."""
        q = {}
        if key:
            q["key"] = key
        q["from"] = str(start)
        if limit:
            q["limit"] = str(limit)
        from .gojson import loads
        entries = self._do("GET", "/v1/audit?" + urlencode(q), raw=True)
        return [audit.Entry.from_json(e) for e in (loads(entries) or [])]

    def audit_export(self):
        """The whole log in the export format (admin), as bytes."""
        return self._do("GET", "/v1/audit/export", raw=True)

    def audit_trail(self, keys=(), tenant="", trusted=()):
        """A trail export (GET /v1/audit/export?key=…; Go: client.AuditTrail), as bytes: every
        entry about ``keys`` and their tenants (and ``tenant``'s own trail; an owner's is always
        included), with the proof that they are complete up to a signed tree head, and a
        consistency proof from each ``trusted`` head's size (heads or sizes). Verify it offline
        with ``ppml.audit.verify_trail``."""
        if isinstance(keys, str):
            keys = [keys]
        q = [("key", k) for k in keys]
        if tenant or not keys:
            q.append(("tenant", tenant or ""))
        for t in trusted or ():
            size = t if isinstance(t, int) else (t if isinstance(t, audit.TreeHead) else audit.TreeHead.from_json(t)).size
            q.append(("from", str(size)))
        return self._do("GET", "/v1/audit/export?" + urlencode(q), raw=True)

    def audit_verify_trail(self, public_key, keys=(), tenant="", trusted=()):
        """Fetch a trail export and verify it (``ppml audit verify --key``): raises
        AuditTamperError, returns the Result."""
        data = self.audit_trail(keys, tenant, trusted)
        return audit.verify_trail(data, public_key, trusted, keys, tenant)

    def audit_public_key(self):
        """The PEM key that signs tree heads. Keep it from a trusted channel: a key fetched from
        the server you are checking proves nothing about that server."""
        return self._do("GET", "/v1/audit/public-key", raw=True)

    def audit_head(self, public_key=None):
        """A freshly signed tree head, verified when public_key is given."""
        h = audit.TreeHead.from_json(self._do("GET", "/v1/audit/head", raw=True))
        if public_key is not None:
            h.verify(public_key)
        return h

    def audit_proof(self, index):
        """The receipt of entry ``index`` as the server sends it (GET /v1/audit/proof): the
        entry, a signed tree head and the inclusion proof, as bytes. Keep it and check it any
        time, offline, with ``ppml.audit.verify_receipt_document``."""
        return self._do("GET", f"/v1/audit/proof?index={int(index)}", raw=True)

    def audit_receipt(self, index, public_key):
        """Fetch entry ``index``'s receipt and verify it: the tree head's signature, then the
        entry's inclusion (what ``ppml audit prove`` does). Returns (Entry, TreeHead)."""
        e, head = audit.verify_receipt_document(self.audit_proof(index), public_key)
        if e.index != int(index):
            raise VerificationError(f"receipt: entry says index {e.index}, asked for {index}")
        return e, head

    def audit_consistency(self, older, public_key):
        """Check that the log still extends ``older`` (a tree head kept earlier) and return the
        newer, verified tree head."""
        older = older if isinstance(older, audit.TreeHead) else audit.TreeHead.from_json(older)
        try:
            older.verify(public_key)
        except VerificationError as e:
            raise VerificationError(f"consistency: the tree head you hold: {e}") from None
        from .gojson import loads, fields
        p = fields(loads(self._do("GET", f"/v1/audit/consistency?from={older.size}", raw=True)),
                   {"from", "tree_head", "proof"})
        head = audit.TreeHead.from_json(p.get("tree_head"))
        head.verify(public_key)
        audit.verify_consistency(older, head, [bytes.fromhex(h) for h in (p.get("proof") or [])])
        return head

    def audit_verify(self, public_key, trusted=()):
        """Export the whole log (admin) and verify it offline against public_key."""
        return audit.verify_export(self.audit_export(), public_key, trusted)

    def jwks(self):
        return self._do("GET", "/.well-known/jwks.json")


def _b64(b):
    return base64.b64encode(bytes(b)).decode()


def _pick(d, cls):
    names = cls.__dataclass_fields__
    return {k: v for k, v in (d or {}).items() if k in names}


def _reason(e):
    while e.__context__ is not None and not isinstance(e, ssl.SSLError) and e.args:
        inner = e.args[0]
        if isinstance(inner, Exception):
            e = inner
            continue
        break
    return str(e)
