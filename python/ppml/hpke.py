"""HPKE (RFC 9180) base mode for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM.

Exactly the one suite the envelope's ``x25519`` recipients use (docs/formats/envelope.md,
section 4.3), written from the RFC's sections 4 (DHKEM), 5.1 (key schedule) and 5.2 (single-shot
Seal/Open with sequence number 0). python3-cryptography has the primitives (X25519, HMAC, HKDF,
AES-GCM) but, before version 45, no HPKE API. Only single-shot base mode is needed: one message
(the data key) per encapsulation, no PSK, no authentication mode, no exporter.
"""
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

KEM_X25519_HKDF_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_256_GCM = 0x0002

N_SECRET = 32  # DHKEM(X25519, HKDF-SHA256): Nsecret
N_ENC = 32  # Nenc = Npk = Nsk
N_K = 32  # AES-256-GCM key
N_N = 12  # AES-256-GCM nonce
MODE_BASE = 0x00

_KEM_SUITE = b"KEM" + KEM_X25519_HKDF_SHA256.to_bytes(2, "big")
_HPKE_SUITE = (b"HPKE" + KEM_X25519_HKDF_SHA256.to_bytes(2, "big") + KDF_HKDF_SHA256.to_bytes(2, "big")
               + AEAD_AES_256_GCM.to_bytes(2, "big"))


class HPKEError(Exception):
    """The ciphertext does not open (wrong private key or modified bytes), or a key is invalid."""


def _extract(salt, ikm):
    # RFC 5869 Extract: an empty salt is HashLen zero bytes, which HMAC pads to the same key.
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _labeled_extract(suite, salt, label, ikm):
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite, prk, label, info, length):
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=labeled).derive(prk)


def _dh(sk, pk_bytes):
    try:
        dh = sk.exchange(X25519PublicKey.from_public_bytes(pk_bytes))
    except ValueError:
        # cryptography refuses an all-zero shared secret (a small-order public key), as RFC 9180
        # section 7.1.4 requires ("ValidationError").
        raise HPKEError("invalid X25519 public key (the shared secret is zero)") from None
    return dh


def _shared_secret(dh, enc, pk_rm):
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + pk_rm, N_SECRET)


def _key_schedule(shared_secret, info):
    psk_id_hash = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE, secret, b"key", context, N_K)
    base_nonce = _labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, N_N)
    return key, base_nonce


def public_key(sk_bytes):
    """SerializePublicKey(pk(sk)) for a serialized X25519 private key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    pk = X25519PrivateKey.from_private_bytes(bytes(sk_bytes)).public_key()
    return pk.public_bytes(Encoding.Raw, PublicFormat.Raw)


def derive_key_pair(ikm):
    """DeriveKeyPair(ikm) (RFC 9180 section 7.1.3): the serialized (clamped) private key."""
    dkp_prk = _labeled_extract(_KEM_SUITE, b"", b"dkp_prk", bytes(ikm))
    return clamp(_labeled_expand(_KEM_SUITE, dkp_prk, b"sk", b"", 32))


def clamp(sk):
    """The X25519 scalar as RFC 7748 decodeScalar25519 uses it, the form SerializePrivateKey gives."""
    b = bytearray(sk)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


def seal_base(pk_r, info, aad, pt, _ephemeral=None):
    """SetupBaseS(pkR, info) then Seal(aad, pt): returns (enc, ciphertext).

    ``_ephemeral`` (a serialized private key) is for known-answer tests only; otherwise the
    ephemeral key is fresh from the operating system's generator.
    """
    pk_r = bytes(pk_r)
    if len(pk_r) != N_ENC:
        raise HPKEError(f"X25519 public key is {len(pk_r)} bytes, want {N_ENC}")
    sk_e = X25519PrivateKey.from_private_bytes(_ephemeral) if _ephemeral is not None else X25519PrivateKey.generate()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    enc = sk_e.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ss = _shared_secret(_dh(sk_e, pk_r), enc, pk_r)
    key, nonce = _key_schedule(ss, bytes(info))
    return enc, AESGCM(key).encrypt(nonce, bytes(pt), bytes(aad))  # sequence number 0: nonce = base_nonce


def open_base(enc, sk_r, info, aad, ct):
    """SetupBaseR(enc, skR, info) then Open(aad, ct): the plaintext, or HPKEError."""
    from cryptography.exceptions import InvalidTag
    enc = bytes(enc)
    if len(enc) != N_ENC:
        raise HPKEError(f"encapsulated key is {len(enc)} bytes, want {N_ENC}")
    sk = X25519PrivateKey.from_private_bytes(bytes(sk_r))
    ss = _shared_secret(_dh(sk, enc), enc, public_key(sk_r))
    key, nonce = _key_schedule(ss, bytes(info))
    try:
        return AESGCM(key).decrypt(nonce, bytes(ct), bytes(aad))
    except InvalidTag:
        raise HPKEError("the ciphertext does not open under this private key") from None
