#!/usr/bin/env python3
"""An independent reader for the ppml envelope, written from docs/formats/envelope.md alone.

usage: reader.py KEYFILE ENVELOPE > PLAINTEXT
KEYFILE is a local key file or a recipient private key file. Exits 1 with a message on any
failure. Needs python3-cryptography (AES-GCM and X25519; HKDF, HMAC, SHA3 and SHAKE come from
the standard library; ML-KEM-768 from cryptography 47 or later, only for mlkem768x25519
recipient keys) — envelope's TestPythonReader runs it when available.
"""
import hashlib, hmac, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives import serialization


def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def load_key(path):
    """Returns (kind, key material, key id): kind "local" or a recipient KEM name."""
    key, kind, stated = None, None, None
    for line in open(path, encoding="ascii").read().split("\n"):
        line = line.strip()
        if line.startswith("# key id:"):
            stated = line[len("# key id:"):].strip()
        elif line == "" or line.startswith("#"):
            continue
        elif line.startswith("ppml-local-key-v1:") or line.startswith("ppml-recipient-key-v1:"):
            if key is not None:
                sys.exit("two key lines")
            if line.startswith("ppml-local-key-v1:"):
                kind, h = "local", line[len("ppml-local-key-v1:"):]
            else:
                kind, _, h = line[len("ppml-recipient-key-v1:"):].partition(":")
                if kind not in KEMS:
                    sys.exit("unknown recipient key type")
            key = bytes.fromhex(h)
            if len(key) != 32:
                sys.exit("key must be 32 bytes")
        else:
            sys.exit("not a key file")
    if key is None:
        sys.exit("no key line")
    if kind == "local":
        key_id = hmac.new(key, b"ppml-envelope v1 local key id", hashlib.sha256).digest()[:16].hex()
    else:
        key_id = recipient_id(kind, KEMS[kind]["public"](key))
    if stated is not None and stated != key_id:
        sys.exit("key id mismatch")
    return kind, key, key_id


# --- Recipient keys (section 4.3): HPKE base mode, RFC 9180 -------------------------------

def x25519_public(sk):
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519(sk, pk):
    return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))


def hkdf_extract(salt, ikm):
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def labeled_extract(suite, salt, label, ikm):
    return hkdf_extract(salt, b"HPKE-v1" + suite + label + ikm)


def labeled_expand(suite, prk, label, info, length):
    return hkdf_expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def dhkem_x25519_decap(enc, sk):
    """DHKEM(X25519, HKDF-SHA256), RFC 9180 section 4.1."""
    suite = b"KEM" + struct.pack(">H", 0x0020)
    dh = x25519(sk, enc)
    kem_context = enc + x25519_public(sk)
    eae_prk = labeled_extract(suite, b"", b"eae_prk", dh)
    return labeled_expand(suite, eae_prk, b"shared_secret", kem_context, 32)


def xwing_expand(seed):
    """ML-KEM-768 + X25519 (X-Wing): the 32-byte seed expands with SHAKE256 to the
    ML-KEM-768 key generation seed (d, z) and the X25519 private key."""
    e = hashlib.shake_256(seed).digest(96)
    return e[:64], e[64:]


def xwing_public(seed):
    from cryptography.hazmat.primitives.asymmetric import mlkem
    m_seed, x_sk = xwing_expand(seed)
    pk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(m_seed).public_key().public_bytes_raw()
    return pk_m + x25519_public(x_sk)


def xwing_decap(enc, seed):
    from cryptography.hazmat.primitives.asymmetric import mlkem
    m_seed, x_sk = xwing_expand(seed)
    ct_m, ct_x = enc[:1088], enc[1088:]
    ss_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(m_seed).decapsulate(ct_m)
    ss_x = x25519(x_sk, ct_x)
    return hashlib.sha3_256(ss_m + ss_x + ct_x + x25519_public(x_sk) + b"\\.//^\\").digest()


KEMS = {
    "x25519": {"id": 0x0020, "enc": 32, "public": x25519_public, "decap": dhkem_x25519_decap},
    "mlkem768x25519": {"id": 0x647A, "enc": 1120, "public": xwing_public, "decap": xwing_decap},
}


def recipient_id(kem, pk):
    return hashlib.sha256(b"ppml-envelope v1 recipient id" + struct.pack(">H", KEMS[kem]["id"]) + pk).digest()[:16].hex()


def hpke_open(kem, sk, wrapped, aad):
    """HPKE base mode, KDF HKDF-SHA256, AEAD AES-256-GCM, info "ppml-envelope v1 recipient wrap"."""
    n = KEMS[kem]["enc"]
    if len(wrapped) != n + 48:
        sys.exit("wrapped data key has the wrong length")
    enc, ct = wrapped[:n], wrapped[n:]
    shared = KEMS[kem]["decap"](enc, sk)
    suite = b"HPKE" + struct.pack(">HHH", KEMS[kem]["id"], 0x0001, 0x0002)
    psk_id_hash = labeled_extract(suite, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite, b"", b"info_hash", b"ppml-envelope v1 recipient wrap")
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(suite, shared, b"secret", b"")
    key = labeled_expand(suite, secret, b"key", context, 32)
    nonce = labeled_expand(suite, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(nonce, ct, aad)


def main():
    kind, key, key_id = load_key(sys.argv[1])
    data = open(sys.argv[2], "rb").read()
    if data[:7] != b"PPMLENV":
        sys.exit("not a ppml envelope")
    version, suite, ctype, flags, S, L = struct.unpack(">BBBHIQ", data[7:24])
    if version != 1 or suite != 1 or flags & ~0x0001:
        sys.exit("unsupported")
    # Flag 0x0001: L was recorded after the data key was wrapped; the wrap's
    # associated data has the length field as 0xFFFFFFFFFFFFFFFF (section 4).
    length_after_wrap = flags & 0x0001 != 0
    if length_after_wrap and L == 0xFFFFFFFFFFFFFFFF:
        sys.exit("corrupt header: length-after-wrap flag without a length")
    aad = data[:16] + b"\xff" * 8 + data[24:63] if length_after_wrap else data[:63]
    salt, prefix = data[24:56], data[56:63]
    (R,) = struct.unpack(">H", data[63:65])
    ref = data[65:65 + R].decode("ascii")
    (W,) = struct.unpack(">H", data[65 + R:67 + R])
    wrapped = data[67 + R:67 + R + W]
    H = 67 + R + W
    given = "local:" + key_id if kind == "local" else "recipient:" + kind + ":" + key_id
    if ref != given:
        sys.exit(f"wrong key: file needs {ref}, given {given}")
    if kind == "local":
        wk = hkdf(key, b"", b"ppml-envelope v1 local wrap key")
        dk = AESGCM(wk).decrypt(wrapped[:12], wrapped[12:], aad)
    else:
        dk = hpke_open(kind, key, wrapped, aad)
    k = hkdf(dk, salt, b"ppml-envelope v1 payload key" + hashlib.sha256(data[:H]).digest())
    body, T = data[H:], S + 16
    n = max(1, -(-len(body) // T))
    last_len = len(body) - (n - 1) * T
    if not (17 <= last_len <= T or (n == 1 and last_len == 16)):
        sys.exit("malformed body length")
    if L != 0xFFFFFFFFFFFFFFFF and len(body) != L + 16 * (1 if L == 0 else -(-L // S)):
        sys.exit("body length does not match L")
    aead, out = AESGCM(k), []
    for i in range(n):
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if i == n - 1 else b"\x00")
        out.append(aead.decrypt(nonce, body[i * T:min(len(body), (i + 1) * T)], b""))
    sys.stdout.buffer.write(b"".join(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # authentication failures raise InvalidTag
        sys.exit(f"failed: {type(e).__name__} {e}")
