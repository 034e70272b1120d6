#!/usr/bin/env python3
"""An independent reader for the ppml envelope, written from docs/formats/envelope.md alone.

usage: reader.py KEYFILE ENVELOPE > PLAINTEXT
Exits 1 with a message on any failure. Needs python3-cryptography (AES-GCM only; HKDF and
HMAC come from the standard library) — envelope's TestPythonReader runs it when available.
"""
import hashlib, hmac, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def load_key(path):
    kek, stated = None, None
    for line in open(path, encoding="ascii").read().split("\n"):
        line = line.strip()
        if line.startswith("# key id:"):
            stated = line[len("# key id:"):].strip()
        elif line == "" or line.startswith("#"):
            continue
        elif line.startswith("ppml-local-key-v1:"):
            if kek is not None:
                sys.exit("two key lines")
            kek = bytes.fromhex(line[len("ppml-local-key-v1:"):])
        else:
            sys.exit("not a key file")
    key_id = hmac.new(kek, b"ppml-envelope v1 local key id", hashlib.sha256).digest()[:16].hex()
    if stated is not None and stated != key_id:
        sys.exit("key id mismatch")
    return kek, key_id


def main():
    kek, key_id = load_key(sys.argv[1])
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
    if ref != "local:" + key_id:
        sys.exit(f"wrong key: file needs {ref}, given local:{key_id}")
    wk = hkdf(kek, b"", b"ppml-envelope v1 local wrap key")
    dk = AESGCM(wk).decrypt(wrapped[:12], wrapped[12:], aad)
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
