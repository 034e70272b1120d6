"""Public-key recipients (docs/formats/envelope.md, sections 4.3, 5.1, 5.2) across
implementations: files the Go CLI encrypts to an x25519 public key open in Python with the
private key file, files Python encrypts to a public key open with `ppml decrypt --key`, and key
files and public keys written by either side load in the other. The Go golden vector checks the
HPKE unwrap against bytes Go wrote; ML-KEM keys are refused with UnsupportedError."""
import os
import random
import subprocess

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


def test_mlkem_is_refused_clearly():
    with pytest.raises(ppml.UnsupportedError, match="not supported in the Python SDK.*ML-KEM"):
        ppml.RecipientIdentity.load(td("golden-recipient-mlkem768x25519.key"))
    with pytest.raises(ppml.UnsupportedError, match="needs ML-KEM"):
        ppml.Recipient.load(td("golden-recipient-mlkem768x25519.pub"))
    with pytest.raises(ppml.UnsupportedError):
        ppml.open(td("golden-recipient-mlkem768x25519.ppml"), keys=td("golden-recipient-mlkem768x25519.key"))
    # an x25519 identity names what the file needs
    with pytest.raises(ppml.WrongKeyError, match="ML-KEM-768"):
        ppml.open(td("golden-recipient-mlkem768x25519.ppml"), keys=td("golden-recipient-x25519.key"))


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
