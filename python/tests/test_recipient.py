"""Public-key recipients (docs/formats/envelope.md, sections 4.3, 5.1, 5.2) across
implementations: files the Go CLI encrypts to an x25519 public key open in Python with the
private key file, files Python encrypts to a public key open with `ppml decrypt --key`, and key
files and public keys written by either side load in the other. The Go golden vector checks the
HPKE unwrap against bytes Go wrote. ML-KEM (mlkem768x25519) files go through the ppml command
both ways, fail like Go's when tampered, and without the command fail saying so."""
import io
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import ppml
from ppml import hpke, recipient

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "..", "envelope", "testdata")


def td(name):
    return os.path.join(TESTDATA, name)


def data(n, seed=0):
    return random.Random(n * 7 + seed).randbytes(n)


@pytest.fixture(scope="module")
def go_pair(tmp_path_factory, ppml_bin):
    """An x25519 key pair made by `ppml key generate --recipient --kem x25519`."""
    d = tmp_path_factory.mktemp("gokeys")
    subprocess.run([ppml_bin, "key", "generate", "--recipient", "--kem", "x25519", "-o", d / "owner.key"],
                   check=True, capture_output=True)
    return str(d / "owner.key"), str(d / "owner.pub")


def test_golden_vector():
    want = open(td("golden.txt"), "rb").read()
    k = ppml.RecipientIdentity.load(td("golden-recipient-x25519.key"))
    assert k.key_id == "637a2301d4980f2aa554db88206e502e"
    assert str(k.recipient) == "ppml1mskv5v0gusammywl7lj8tn9rx3ltg7qs04dawedt5jhy5vxrt4zq4hpgzt"
    assert ppml.Recipient.load(td("golden-recipient-x25519.pub")).public_key == k.recipient.public_key
    h = ppml.inspect(td("golden-recipient-x25519.ppml"))
    assert str(h.key_ref) == "recipient:x25519:637a2301d4980f2aa554db88206e502e"
    assert len(h.wrapped_key) == 80
    assert k.unwrap_data_key(h.key_ref, h.wrapped_key, h.raw[:63]) == bytes(range(0x27, 0x47))
    with ppml.open(td("golden-recipient-x25519.ppml"), keys=td("golden-recipient-x25519.key")) as f:
        assert f.read() == want


def test_go_encrypts_python_decrypts(tmp_path, go_pair, ppml_bin):
    key, pub = go_pair
    for n in (0, 1, (1 << 20) + 3):
        src = tmp_path / f"in{n}"
        src.write_bytes(data(n))
        out = tmp_path / f"in{n}.ppml"
        subprocess.run([ppml_bin, "encrypt", "--recipient", pub, "-o", out, src], check=True, capture_output=True)
        assert ppml.inspect(out).key_ref.scheme == "recipient"
        with ppml.open(out, keys=[key]) as f:
            assert f.read() == data(n)
    # the public key's text works as well as the file, and the private key file as an object
    text = open(pub).read().strip()
    subprocess.run([ppml_bin, "encrypt", "--recipient", text, "-o", tmp_path / "t.ppml", tmp_path / "in1"],
                   check=True, capture_output=True)
    assert ppml.open(tmp_path / "t.ppml", keys=ppml.RecipientIdentity.load(key)).read() == data(1)


def test_python_encrypts_go_decrypts(tmp_path, go_pair, ppml_bin):
    key, pub = go_pair
    text = open(pub).read().strip()
    for i, r in enumerate((pub, text, ppml.Recipient.load(pub))):
        n = (1 << 20) + i
        p = tmp_path / f"py{i}.ppml"
        with ppml.create(p, recipient=r, content_type="csv", size=n) as w:
            w.write(data(n, i))
        res = subprocess.run([ppml_bin, "decrypt", "--key", key, "-o", "-", p], check=True, capture_output=True)
        assert res.stdout == data(n, i)
    # encrypt_file, then the Go CLI's inspect names the recipient
    (tmp_path / "a.csv").write_bytes(b"x,y\n1,2\n")
    ppml.encrypt_file(tmp_path / "a.csv", recipient=pub)
    res = subprocess.run([ppml_bin, "decrypt", "--key", key, "-o", "-", tmp_path / "a.csv.ppml"],
                         check=True, capture_output=True)
    assert res.stdout == b"x,y\n1,2\n"


def test_python_key_files_work_in_go(tmp_path, ppml_bin):
    k = ppml.RecipientIdentity.generate(tmp_path / "me.key")
    assert oct(os.stat(tmp_path / "me.key").st_mode & 0o777) == "0o600"
    res = subprocess.run([ppml_bin, "key", "public", tmp_path / "me.key"], check=True, capture_output=True, text=True)
    assert res.stdout.strip() == str(k.recipient) == open(tmp_path / "me.pub").read().strip()
    (tmp_path / "m").write_bytes(data(5000))
    subprocess.run([ppml_bin, "encrypt", "--recipient", tmp_path / "me.pub", "-o", tmp_path / "m.ppml",
                    tmp_path / "m"], check=True, capture_output=True)
    assert ppml.decrypt_file(tmp_path / "m.ppml", tmp_path / "m.out", keys=tmp_path / "me.key") == 5000
    assert (tmp_path / "m.out").read_bytes() == data(5000)


def test_wrong_key(tmp_path, go_pair, ppml_bin):
    key, pub = go_pair
    other = ppml.RecipientIdentity.generate(tmp_path / "other.key")
    local = ppml.LocalKey.generate(tmp_path / "local.key")
    p = tmp_path / "f.ppml"
    with ppml.create(p, recipient=pub) as w:
        w.write(b"secret")
    for wrong in (str(tmp_path / "other.key"), str(tmp_path / "local.key"), other):
        with pytest.raises(ppml.WrongKeyError) as e:
            ppml.open(p, keys=wrong)
        assert ppml.RecipientIdentity.load(key).key_id in str(e.value)
    assert ppml.open(p, keys=[local, other, key]).read() == b"secret"  # the keyring finds the right one
    # Go agrees that another private key is the wrong key
    r = subprocess.run([ppml_bin, "decrypt", "--key", tmp_path / "other.key", "-o", "-", p], capture_output=True)
    assert r.returncode != 0 and b"wrong key" in r.stderr


def test_tampered(tmp_path, go_pair, ppml_bin):
    key, pub = go_pair
    src = tmp_path / "in"
    src.write_bytes(data(1000))
    p = tmp_path / "go.ppml"
    subprocess.run([ppml_bin, "encrypt", "--recipient", pub, "-o", p, src], check=True, capture_output=True)
    orig = p.read_bytes()
    h = ppml.inspect(p)
    H = len(h.raw)
    cases = {
        "salt": (30, ppml.CorruptHeaderError),  # in the wrap's associated data
        "enc": (H - 80 + 3, ppml.CorruptHeaderError),  # the encapsulated key
        "wrap tag": (H - 1, ppml.CorruptHeaderError),
        "body": (H + 10, ppml.AuthenticationError),
    }
    for what, (off, err) in cases.items():
        b = bytearray(orig)
        b[off] ^= 0x01
        p.write_bytes(bytes(b))
        with pytest.raises(err):
            with ppml.open(p, keys=key) as f:
                f.read()
    # a wrapped key of the wrong length is a corrupt header, not a crash
    k = ppml.RecipientIdentity.load(key)
    with pytest.raises(ppml.CorruptHeaderError):
        k.unwrap_data_key(h.key_ref, h.wrapped_key[:-1], h.raw[:63])


def test_mlkem_golden_vector(ppml_bin):
    """Go's golden ML-KEM file opens in Python (through ppml decrypt); key ids agree."""
    k = ppml.RecipientIdentity.load(td("golden-recipient-mlkem768x25519.key"))
    pub = ppml.Recipient.load(td("golden-recipient-mlkem768x25519.pub"))
    h = ppml.inspect(td("golden-recipient-mlkem768x25519.ppml"))
    assert k.key_id == pub.key_id == h.key_ref.key_id and h.key_ref.kem == "mlkem768x25519"
    assert str(k.recipient) == str(pub) and str(pub).startswith("ppmlpq1")
    with ppml.open(td("golden-recipient-mlkem768x25519.ppml"), keys=td("golden-recipient-mlkem768x25519.key")) as f:
        assert f.read() == open(td("golden.txt"), "rb").read() and f.header.key_ref == h.key_ref
    with pytest.raises(ppml.WrongKeyError, match="ML-KEM-768"):
        ppml.open(td("golden-recipient-mlkem768x25519.ppml"), keys=td("golden-recipient-x25519.key"))


@pytest.fixture(scope="module")
def pq_pair(tmp_path_factory, ppml_bin):
    """An mlkem768x25519 key pair made by `ppml key generate --recipient` (the default kind)."""
    d = tmp_path_factory.mktemp("pqkeys")
    for name in ("owner", "other"):
        subprocess.run([ppml_bin, "key", "generate", "--recipient", "-o", d / f"{name}.key"], check=True, capture_output=True)
    return str(d / "owner.key"), str(d / "owner.pub"), str(d / "other.key")


class _Pipe(io.RawIOBase):
    def __init__(self, b):
        self._b = io.BytesIO(b)

    def readable(self):
        return True

    def readinto(self, buf):
        return self._b.readinto(buf)


def test_mlkem_both_ways(tmp_path, pq_pair, ppml_bin, monkeypatch):
    """A provider encrypts to the owner's ML-KEM public key in Python and `ppml decrypt` opens
    it; what `ppml encrypt --recipient` wrote opens in Python, from a path, a file object and a
    pipe. No plaintext reaches the disk on the way: the only files are the outputs."""
    key, pub, _ = pq_pair
    pub_text = open(pub).read().strip()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    out = tmp_path / "out"
    out.mkdir()
    for n, ctype in ((0, "bytes"), (1, "json"), ((1 << 20) + 3, "csv"), (3 << 20, "parquet")):
        p = out / f"py{n}.ppml"
        with ppml.create(p, recipient=pub if n % 2 else pub_text, content_type=ctype, size=n) as w:
            w.write(data(n))
        assert w.header.key_ref.kem == "mlkem768x25519" and w.header.content_type_name == ctype
        r = subprocess.run([ppml_bin, "decrypt", "--key", key, "-o", "-", p], check=True, capture_output=True)
        assert r.stdout == data(n)
        src = tmp_path / f"in{n}"
        src.write_bytes(data(n, 1))
        g = out / f"go{n}.ppml"
        subprocess.run([ppml_bin, "encrypt", "--recipient", pub, "-o", g, src], check=True, capture_output=True)
        with ppml.open(g, keys=key) as f:
            assert f.read() == data(n, 1) and f.header.key_ref.kem == "mlkem768x25519"
            if n:
                assert f.pread(2, n // 2) == data(n, 1)[n // 2:n // 2 + 2]
        with ppml.open(open(g, "rb"), keys=[ppml.LocalKey(bytes(32)), key]) as f:
            assert f.read() == data(n, 1)
        with ppml.open(io.BufferedReader(_Pipe(g.read_bytes())), keys=key) as f:
            assert f.read() == data(n, 1)
    # Text mode, encrypt_file / decrypt_file, and the owner's identity as the writing key.
    (tmp_path / "people.csv").write_text("name\nAndy\n")
    ppml.encrypt_file(tmp_path / "people.csv", out / "people.csv.ppml", recipient=pub)
    with ppml.open(out / "people.csv.ppml", "r", keys=key) as f:
        assert f.read() == "name\nAndy\n"
    assert ppml.decrypt_file(out / "people.csv.ppml", out / "people.csv", keys=key) == 10
    with ppml.create(out / "self.ppml", key=key) as w:
        w.write(b"to myself")
    assert ppml.open(out / "self.ppml", keys=key).read() == b"to myself"
    assert list(scratch.iterdir()) == []
    # Atomic: an exception, a short write or a dropped writer leaves nothing (nor a temporary).
    with pytest.raises(RuntimeError):
        with ppml.create(out / "partial.ppml", recipient=pub) as w:
            w.write(b"x" * 100)
            raise RuntimeError("the provider's program failed")
    with pytest.raises(ppml.EnvelopeError, match="only 3 of the declared 10"):
        with ppml.create(out / "short.ppml", recipient=pub, size=10) as w:
            w.write(b"abc")
    w = ppml.create(out / "dropped.ppml", recipient=pub)
    w.write(b"abc")
    del w
    with pytest.raises(FileExistsError):
        ppml.create(out / "self.ppml", recipient=pub)
    with pytest.raises(ValueError, match="segments of 1048576"):
        ppml.create(out / "seg.ppml", recipient=pub, segment_size=4096)
    left = sorted(x.name for x in out.iterdir())
    assert not any(n.startswith((".", "partial", "short", "dropped", "seg")) for n in left), left
    # The provider holds only the public key: it cannot open what it wrote.
    with pytest.raises(ppml.WrongKeyError):
        ppml.open(out / "py1.ppml", keys=pq_pair[2])
    with pytest.raises(ppml.UnsupportedError, match="ML-KEM-768"):
        ppml.Recipient.load(pub).new_data_key(b"")


def test_mlkem_tampered_fail_alike(tmp_path, pq_pair, ppml_bin, gointerop):
    """The envelope catalogue on an ML-KEM file: each variant fails in Python (path and pipe)
    with the class Go's envelope.Open and envelope.Reader report."""
    key, pub, other_key = pq_pair
    plain = data(3 * (1 << 20) + 7)
    (tmp_path / "p").write_bytes(plain)
    for name in ("good", "other"):
        subprocess.run([ppml_bin, "encrypt", "--recipient", pub, "--type", "csv", "-o", tmp_path / name, tmp_path / "p"],
                       check=True, capture_output=True)
    good, other = (tmp_path / "good").read_bytes(), (tmp_path / "other").read_bytes()
    hl = len(ppml.inspect(io.BytesIO(good)).raw)
    seg = 1 << 20 + 16

    def flip(i):
        b = bytearray(good)
        b[i] ^= 1
        return bytes(b)

    def swap(a, c):
        b = bytearray(good)
        s1, s2 = hl + a * ((1 << 20) + 16), hl + c * ((1 << 20) + 16)
        n = (1 << 20) + 16
        b[s1:s1 + n], b[s2:s2 + n] = good[s2:s2 + n], good[s1:s1 + n]
        return bytes(b)

    vs = {"intact": good, "empty": b"", "not an envelope": b"name,age\n" * 10, "header swap": good[:hl] + other[hl:],
          "appended byte": good + b"\0", "appended segment": good + good[hl:hl + (1 << 20) + 16],
          "swapped 0,1": swap(0, 1), "swapped 1,3": swap(1, 3),
          "spliced 2": good[:hl + 2 * ((1 << 20) + 16)] + other[hl + 2 * ((1 << 20) + 16):]}
    for n in (1, 8, 40, hl - 1, hl, hl + 1, hl + (1 << 20) + 16, len(good) - 1):
        vs[f"truncated to {n}"] = good[:n]
    for i in (0, 5, 9, 12, 20, 40, 60, 100, hl - 20, hl - 1, hl, hl + 500, len(good) - 1):
        vs[f"bit {i}"] = flip(i)
    names = sorted(vs)
    d = tmp_path / "v"
    d.mkdir()
    for i, n in enumerate(names):
        (d / str(i)).write_bytes(vs[n])
    go = gointerop("decrypt", "-key", key, *[d / str(i) for i in range(len(names))])
    assert len(go) == len(names)

    def kind(fn):
        try:
            with fn() as f:
                assert f.read() == plain
            return "ok"
        except ppml.EnvelopeError as e:
            return e.kind

    # Each open of an ML-KEM file runs ppml for the decapsulation: the variants are
    # independent, so a few at a time.
    def both(i):
        return (kind(lambda: ppml.open(d / str(i), keys=key)),
                kind(lambda: ppml.open(io.BufferedReader(_Pipe(vs[names[i]])), keys=key)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        gots = list(pool.map(both, range(len(names))))
    kinds = set()
    for n, g, got in zip(names, go, gots):
        want = (g["file"]["kind"] if not g["file"]["ok"] else "ok", g["reader"]["kind"] if not g["reader"]["ok"] else "ok")
        assert got == want, n
        kinds.update(got)
    assert kinds >= {"ok", "not_envelope", "corrupt_header", "truncated", "trailing_data", "auth"}, kinds
    with pytest.raises(ppml.WrongKeyError) as ei:
        ppml.open(tmp_path / "good", keys=other_key)
    assert ppml.RecipientIdentity.load(key).key_id in str(ei.value)


def test_mlkem_without_the_cli(tmp_path, pq_pair, monkeypatch):
    """Without the ppml command, ML-KEM keys fail with an error that says what is missing and
    what to do; x25519 keys work as before."""
    key, pub, _ = pq_pair
    monkeypatch.delenv("PPML_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    for fn in (lambda: ppml.RecipientIdentity.load(key),
               lambda: ppml.open(td("golden-recipient-mlkem768x25519.ppml"), keys=td("golden-recipient-mlkem768x25519.key")),
               lambda: ppml.create(tmp_path / "x.ppml", recipient=pub)):
        with pytest.raises(ppml.UnsupportedError) as ei:
            fn()
        msg = str(ei.value)
        assert "ML-KEM-768" in msg and "ppml command" in msg and "PPML_BIN" in msg and "--kem x25519" in msg, msg
    assert not (tmp_path / "x.ppml").exists()
    assert ppml.Recipient.load(pub).kem == "mlkem768x25519"  # a public key still parses (checksum, key id)
    monkeypatch.setenv("PPML_BIN", str(tmp_path / "no-such-ppml"))
    with pytest.raises(ppml.UnsupportedError, match="PPML_BIN=.*no-such-ppml"):
        ppml.create(tmp_path / "x.ppml", recipient=pub)
    with ppml.open(td("golden-recipient-x25519.ppml"), keys=td("golden-recipient-x25519.key")) as f:
        assert f.read() == open(td("golden.txt"), "rb").read()


def test_public_key_text():
    good = "ppml1mskv5v0gusammywl7lj8tn9rx3ltg7qs04dawedt5jhy5vxrt4zq4hpgzt"
    r = ppml.Recipient.parse(good)
    assert ppml.Recipient.parse(good.upper()).public_key == r.public_key
    assert ppml.Recipient.parse(good[:20] + "\n " + good[20:]).public_key == r.public_key
    bad = {
        good[:-1] + ("q" if good[-1] != "q" else "p"): "checksum",
        good[:10] + good[10].upper() + good[11:]: "mixes",
        "age1" + good[5:]: "checksum",
        recipient.bech32m_encode("ppml", bytes(31)): "31 bytes",
        recipient.bech32m_encode("nope", bytes(32)): "prefix",
        good.replace("q", "b", 1): "invalid character",
    }
    for text, msg in bad.items():
        with pytest.raises(ValueError, match=msg):
            ppml.Recipient.parse(text)


def test_key_file_checks(tmp_path):
    body = open(td("golden-recipient-x25519.key")).read()
    cases = {
        body.replace("637a2301", "637a2302"): "key id",
        body.replace("# public key: ppml1mskv", "# public key: ppml1mskw"): "public key",
        body.replace(":x25519:", ":x448:"): "unknown key type",
        body + body.splitlines()[-1] + "\n": "more than one key line",
        body.replace("ppml-recipient-key-v1:x25519:c0", "ppml-recipient-key-v1:x25519:C0"): "64 lowercase hex",
    }
    for text, msg in cases.items():
        p = tmp_path / "k.key"
        p.write_text(text)
        os.chmod(p, 0o600)
        with pytest.raises(ppml.KeyFileError, match=msg):
            ppml.RecipientIdentity.load(p)


def test_hpke_round_trip_and_derive_key_pair():
    sk = hpke.derive_key_pair(b"ikm" * 11)
    assert hpke.clamp(sk) == sk
    pk = hpke.public_key(sk)
    enc, ct = hpke.seal_base(pk, b"info", b"aad", b"message")
    assert hpke.open_base(enc, sk, b"info", b"aad", ct) == b"message"
    for args in ((enc, sk, b"inf0", b"aad", ct), (enc, sk, b"info", b"aad!", ct),
                 (bytes(32), sk, b"info", b"aad", ct)):
        with pytest.raises(hpke.HPKEError):
            hpke.open_base(*args)


def test_doc_example(repo, tmp_path, monkeypatch, ppml_bin):
    """docs/python.md's recipient example runs as written, and the CLI opens what it wrote."""
    import re
    doc = open(os.path.join(repo, "docs", "python.md"), encoding="utf-8").read()
    block = re.search(r"### Public-key recipients\n.*?```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.csv").write_bytes(b"name\nAndy\n")
    exec(compile(block, "docs/python.md", "exec"), {})
    r = subprocess.run([ppml_bin, "decrypt", "--key", "owner.key", "-o", "-", "people.csv.ppml"],
                       check=True, capture_output=True)
    assert r.stdout == b"name\nAndy\n"
