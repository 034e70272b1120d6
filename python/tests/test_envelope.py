"""The envelope in Python alone: the golden vector, round trips, random access, and the bad-input
catalogue of Go's envelope tests (TestBadInput), both through the random-access reader and the
sequential one."""
import io
import os
import random
import stat

import pytest

import ppml
from ppml import header as hdr
from ppml import keyref

SEG = 64


def key(seed):
    return ppml.LocalKey(bytes([seed]) * 32)


def seal(k, pt, seg=SEG, known=True, ctype="csv"):
    buf = io.BytesIO()
    w = ppml.create(buf, key=k, content_type=ctype, segment_size=seg, size=len(pt) if known else None)
    w.write(pt)
    w.close()
    return buf.getvalue()


def read_random(ct, keys):
    with ppml.open(io.BytesIO(ct), keys=keys) as f:
        return f.read()


class _Pipe(io.RawIOBase):
    """A non-seekable source, as stdin would be."""

    def __init__(self, b):
        self._b = io.BytesIO(b)

    def readable(self):
        return True

    def readinto(self, buf):
        return self._b.readinto(memoryview(buf)[:7])  # short reads, too


def read_stream(ct, keys):
    """Decrypt sequentially; return (plaintext released, error or None)."""
    out = bytearray()
    try:
        f = ppml.open(_Pipe(ct), keys=keys)
        assert isinstance(f, ppml.EnvelopeStream)
        while True:
            b = f.read(1000)
            if not b:
                break
            out += b
    except ppml.EnvelopeError as e:
        return bytes(out), e
    return bytes(out), None


def test_golden_vector(repo):
    d = os.path.join(repo, "envelope", "testdata")
    k = ppml.LocalKey.load(os.path.join(d, "golden.key"))
    assert k.key_id == "a68653034fd9729f34cfb04b682095a4"
    want = open(os.path.join(d, "golden.txt"), "rb").read()
    with ppml.open(os.path.join(d, "golden.ppml"), keys=k) as f:
        assert f.read() == want
        h = f.header
        assert (str(h.key_ref), h.content_type_name, h.segment_size, h.plaintext_length, len(h.raw)) == \
            ("local:a68653034fd9729f34cfb04b682095a4", "csv", 64, 146, 165)
    # The intermediate values the spec's worked example states.
    assert hdr.payload_key(bytes(range(0x27, 0x47)), h.raw, h.salt).hex() == \
        "40720bc4df8181d8bae7fde6184e66863934ab5cfbad25cdaf46c2e7c3f6d8e6"
    assert k.unwrap_data_key(h.key_ref, h.wrapped_key, h.wrap_aad) == bytes(range(0x27, 0x47))
    got, err = read_stream(open(os.path.join(d, "golden.ppml"), "rb").read(), k)
    assert err is None and got == want


def test_golden_vector_length_after_wrap(repo):
    """The second vector: flag 0x0001, L recorded after the key wrap (two-phase writing)."""
    d = os.path.join(repo, "envelope", "testdata")
    k = ppml.LocalKey.load(os.path.join(d, "golden.key"))
    want = open(os.path.join(d, "golden.txt"), "rb").read()
    data = open(os.path.join(d, "golden-length-after-wrap.ppml"), "rb").read()
    with ppml.open(io.BytesIO(data), keys=k) as f:
        assert f.read() == want
        h = f.header
    assert h.flags == 1 and h.length_after_wrap and h.plaintext_length == 146
    assert h.wrap_aad[16:24] == b"\xff" * 8 and h.wrap_aad[:16] == h.raw[:16] and h.wrap_aad[24:] == h.raw[24:63]
    assert hdr.payload_key(bytes(range(0x27, 0x47)), h.raw, h.salt).hex() == \
        "4392b63754f4211b420a1d7b65d712f93c8711921cb652cea6446e685b482878"
    assert read_stream(data, k) == (want, None)
    # L is bound by the payload key, not the wrap: a changed L fails in the body, not the unwrap.
    bad = bytearray(data)
    bad[23] ^= 1
    with pytest.raises((ppml.TruncatedError, ppml.TrailingDataError, ppml.AuthenticationError)):
        read_random(bytes(bad), k)
    bad = bytearray(data)  # the flag without a length
    bad[16:24] = b"\xff" * 8
    with pytest.raises(ppml.CorruptHeaderError, match="no length is recorded"):
        read_random(bytes(bad), k)
    bad = bytearray(data)  # another flag bit
    bad[10:12] = b"\x00\x03"
    with pytest.raises(ppml.UnsupportedError, match="0x0002"):
        read_random(bytes(bad), k)


@pytest.mark.parametrize("n", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 7, 1000 * SEG + 5])
@pytest.mark.parametrize("known", [True, False])
def test_round_trip(n, known):
    k = key(1)
    pt = random.Random(n).randbytes(n)
    ct = seal(k, pt, known=known)
    assert len(ct) - len(ppml.inspect(io.BytesIO(ct)).raw) == hdr.body_len(n, SEG)
    assert read_random(ct, k) == pt
    assert read_stream(ct, k) == (pt, None)
    # byte-at-a-time writes give the same plaintext
    buf = io.BytesIO()
    with ppml.create(buf, key=k, segment_size=SEG, size=n if known else None) as w:
        for i in range(0, n, 1 + n // 97):
            w.write(pt[i:i + 1 + n // 97])
    assert read_random(buf.getvalue(), k) == pt


def test_random_access():
    k = key(2)
    seg = 4096
    pt = random.Random(3).randbytes(37 * seg + 123)
    ct = seal(k, pt, seg=seg)
    r = random.Random(1)
    with ppml.open(io.BytesIO(ct), keys=k, workers=3) as f:
        assert f.size == len(pt)
        for _ in range(500):
            off, n = r.randrange(len(pt) + 10), r.randrange(3 * seg)
            f.seek(off)
            assert f.read(n) == pt[off:off + n]
            assert f.pread(n, off) == pt[off:off + n]
        f.seek(-8, io.SEEK_END)
        assert f.read() == pt[-8:]
        f.seek(0)
        assert f.read() == pt
        f.seek(5 * seg + 3)
        out = io.BytesIO()
        assert f.copy_to(out) == len(pt) - 5 * seg - 3 and out.getvalue() == pt[5 * seg + 3:]


def test_text_mode_and_files(tmp_path):
    k = ppml.LocalKey.generate(tmp_path / "owner.key")
    assert stat.S_IMODE(os.stat(tmp_path / "owner.key").st_mode) == 0o600
    assert ppml.LocalKey.load(tmp_path / "owner.key").key_id == k.key_id
    p = tmp_path / "people.csv.ppml"
    with ppml.create(p, "w", key=str(tmp_path / "owner.key"), content_type="csv") as f:
        f.write("name,age\nÄnne,30\n")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    with ppml.open(p, "r", keys=k) as f:
        assert f.readlines() == ["name,age\n", "Änne,30\n"]
    with pytest.raises(FileExistsError):
        ppml.create(p, key=k)
    src = tmp_path / "plain.json"
    src.write_bytes(b'{"a": 1}\n' * 1000)
    h = ppml.encrypt_file(src, key=k)
    assert h.content_type_name == "json" and h.plaintext_length == 9000
    os.unlink(src)
    assert ppml.decrypt_file(str(src) + ".ppml", keys=k) == 9000 and src.read_bytes() == b'{"a": 1}\n' * 1000


def test_no_partial_output(tmp_path):
    k = key(1)
    p = tmp_path / "out.ppml"
    with pytest.raises(RuntimeError):
        with ppml.create(p, key=k, segment_size=SEG) as w:
            w.write(b"x" * 1000)
            raise RuntimeError("the program failed")
    w = ppml.create(p, key=k, size=10)
    w.write(b"123456789")
    with pytest.raises(ppml.EnvelopeError, match="only 9 of the declared 10"):
        w.close()
    w = ppml.create(p, key=k, size=10)
    with pytest.raises(ppml.EnvelopeError, match="more than the declared"):
        w.write(b"x" * 11)
    w.abort()

    def abandoned():
        w = ppml.create(p, "w", key=k)
        w.write("secret")
    abandoned()  # never closed: garbage collected, must not be committed
    with pytest.raises(ppml.EnvelopeError):
        with ppml.create(p, "w", key=k) as w:
            w.write("x")
            raise ppml.EnvelopeError("boom")
    assert os.listdir(tmp_path) == []


class TestBadInput:
    """Mirrors envelope.TestBadInput: each failure has its class, and only authenticated
    plaintext is ever released."""

    k = key(3)
    pt = random.Random(4).randbytes(3 * SEG + 7)
    good = seal(k, pt)
    good_stream = seal(k, pt, known=False)
    hl = len(ppml.inspect(io.BytesIO(good)).raw)

    def seg(self, b, i):
        s = self.hl + i * (SEG + 16)
        return s, min(len(b), s + SEG + 16)

    def expect(self, ct, *classes, keys=None):
        keys = keys or self.k
        with pytest.raises(ppml.EnvelopeError) as ei:
            read_random(ct, keys)
        assert isinstance(ei.value, classes) if classes else True, (type(ei.value), ei.value)
        got, err = read_stream(ct, keys)
        assert err is not None, "sequential reader accepted a bad file"
        assert isinstance(err, classes) if classes else True, (type(err), err)
        assert self.pt.startswith(got) and len(got) % SEG == 0, "released unauthenticated plaintext"
        return ei.value

    def test_wrong_key(self):
        other = key(4)
        e = self.expect(self.good, ppml.WrongKeyError, keys=other)
        assert self.k.key_id in str(e) and other.key_id in str(e) and "wrong key" in str(e)
        ref = keyref.parse("kms://keys.example.com:8443/owner-a@3")
        with pytest.raises(ppml.WrongKeyError, match="kms://keys.example.com:8443/owner-a@3"):
            other.unwrap_data_key(ref, b"\x01", b"")
        with pytest.raises(ppml.WrongKeyError):
            ppml.Keyring([other, key(5)]).unwrap_data_key(self.k.ref, b"", b"")
        assert read_random(self.good, [other, self.k]) == self.pt

    def test_truncation_at_any_byte(self):
        for ct, classes in ((self.good, (ppml.TruncatedError,)),
                            (self.good_stream, (ppml.TruncatedError, ppml.AuthenticationError))):
            for n in range(len(ct)):
                self.expect(ct[:n], *((ppml.EmptyFileError,) if n == 0 else classes))

    def test_any_flipped_bit(self):
        for ct in (self.good, self.good_stream):
            for i in range(len(ct) * 8):
                bad = bytearray(ct)
                bad[i // 8] ^= 1 << (i % 8)
                self.expect(bytes(bad))

    def test_swapped_segments(self):
        for a, b in ((0, 1), (1, 2), (0, 2)):
            bad = bytearray(self.good)
            (s1, e1), (s2, e2) = self.seg(bad, a), self.seg(bad, b)
            bad[s1:e1], bad[s2:e2] = self.good[s2:e2], self.good[s1:e1]
            self.expect(bytes(bad), ppml.AuthenticationError)
        body = self.good[self.hl:]
        swapped = self.good[:self.hl] + body[3 * (SEG + 16):] + body[:3 * (SEG + 16)]
        self.expect(swapped)

    def test_spliced_segment(self):
        other = seal(self.k, self.pt)
        for i in range(4):
            bad = bytearray(self.good)
            s, e = self.seg(bad, i)
            bad[s:e] = other[s:e]
            self.expect(bytes(bad), ppml.AuthenticationError)
            assert len(read_stream(bytes(bad), self.k)[0]) == i * SEG

    def test_header_swap(self):
        b = seal(self.k, self.pt)
        bad = self.good[:self.hl] + b[self.hl:]
        e = self.expect(bad, ppml.AuthenticationError)
        assert e.segment == 0 and "header of another file" in str(e)

    def test_appended_data(self):
        s3, e3 = self.seg(self.good, 3)
        s0, e0 = self.seg(self.good, 0)
        for extra in (b"\0", bytes(16), bytes(SEG + 16), self.good[s3:e3], self.good[s0:e0]):
            self.expect(self.good + extra, ppml.TrailingDataError)
            self.expect(self.good_stream + extra, ppml.TrailingDataError, ppml.TruncatedError, ppml.AuthenticationError)
        full = seal(self.k, self.pt[:2 * SEG], known=False)
        self.expect(full + bytes(SEG + 16), ppml.TrailingDataError)

    def test_empty_files(self):
        e = self.expect(b"", ppml.EmptyFileError)
        assert isinstance(e, ppml.NotEnvelopeError) and "empty" in str(e)
        for known in (True, False):
            ct = seal(self.k, b"", known=known)
            assert read_random(ct, self.k) == b"" and read_stream(ct, self.k) == (b"", None)
            self.expect(ct[:len(ppml.inspect(io.BytesIO(ct)).raw)], ppml.TruncatedError, ppml.AuthenticationError)

    def test_not_an_envelope(self):
        for b in (b"name,age\nAndy,30\n", random.Random(9).randbytes(500), b"PPMLENX" + bytes(100)):
            self.expect(b, ppml.NotEnvelopeError)
        v2 = bytearray(self.good)
        v2[7] = 2
        self.expect(bytes(v2), ppml.UnsupportedError)

    def test_path_in_message(self, tmp_path):
        p = tmp_path / "x.ppml"
        p.write_bytes(self.good[:-1])
        with pytest.raises(ppml.TruncatedError, match=str(p)):
            ppml.open(p, keys=self.k)


def test_key_refs():
    good = ["local:0123456789abcdef0123456789abcdef", "kms://keys.example.com/owner-a",
            "kms://keys.example.com:8443/owner-a@3", "kms://10.0.0.1:1/k", "kms://[2001:db8::1]:8443/k.v_1-2@4294967295",
            "kms://kms.example.org/owner/results@2"]
    for s in good:
        assert str(keyref.parse(s)) == s
    bad = ["", "local:", "local:0123456789ABCDEF0123456789abcdef", "local:0123", "file:x", "kms://", "kms://host",
           "kms://host/", "kms://Host/k", "kms://host:0/k", "kms://host:65536/k", "kms://host:/k", "kms://host/k@0",
           "kms://host/k@01", "kms://host/k@", "kms://host/a//b", "kms://host/a/", "kms://host/../k", "kms://host/a/./b",
           "kms://[2001:DB8::1]/k", "kms://[2001:db8:0::1]/k", "kms://[10.0.0.1]/k", "kms://-h/k", "kms://host:080/k",
           "kms://host/" + "k" * 257, "kms://host/k@1@2", "kms://host/k b", "kms://host:+1/k", "kms://host:1_0/k",
           "kms://[::ffff:1.2.3.4]/k", "kms://[fe80::1%eth0]/k", "kms://host/k@4294967296", "kms://hóst/k"]
    for s in bad:
        with pytest.raises(ValueError):
            keyref.parse(s)


def test_key_files():
    secret = bytes(range(0xa0, 0xc0))
    good = "# key id: a68653034fd9729f34cfb04b682095a4\nppml-local-key-v1:" + secret.hex() + "\n"
    assert ppml.LocalKey.parse(good).key_id == "a68653034fd9729f34cfb04b682095a4"
    assert ppml.LocalKey.parse("  \r\n# any comment \xff\nppml-local-key-v1:" + secret.hex()).key_id
    for bad in ["", "# only comments\n", good.replace("a686", "b686"), good + good.splitlines()[1] + "\n",
                "ppml-local-key-v1:" + secret.hex().upper(), "ppml-local-key-v1:abcd", "hello\n" + good,
                "x" * (64 << 10) + "\n" + good]:
        with pytest.raises(ppml.KeyFileError):
            ppml.LocalKey.parse(bad)


def test_header_fuzz():
    """Random corruptions of headers only ever raise EnvelopeError subclasses."""
    k = key(7)
    base = seal(k, b"a,b\n1,2\n" * 50)
    r = random.Random(42)
    for _ in range(3000):
        b = bytearray(base[:r.randrange(1, 140)] if r.random() < 0.3 else base)
        for _ in range(r.randrange(1, 4)):
            i = r.randrange(min(len(b), 120))
            b[i] = r.randrange(256)
        try:
            read_random(bytes(b), k)
        except ppml.EnvelopeError:
            pass


def test_docs_examples(repo, tmp_path, monkeypatch, ppml_bin):
    """docs/python.md's envelope and DataFrame examples run as written."""
    import re
    doc = open(os.path.join(repo, "docs", "python.md"), encoding="utf-8").read()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.json").write_text('{"w": [1, 2]}')
    for section in ("Envelopes", "DataFrames"):
        block = re.search(rf"## {section}\n\n```python\n(.*?)```", doc, re.S).group(1)
        exec(compile(block, "docs/python.md", "exec"), {})
    assert (tmp_path / "people.csv").read_bytes() == b"name,age\nAndy,30\n"
    assert ppml.inspect(tmp_path / "model.json.ppml").content_type_name == "json"
    assert ppml.read_parquet(tmp_path / "visits.parquet.ppml", keys=tmp_path / "analyst.key").shape == (3, 2)


def test_failed_open_leaves_descriptors_alone(tmp_path):
    """A path whose open fails (wrong key) is closed once, by ppml.open: the half-built reader,
    when collected, must not close the descriptor number again (by then another file's)."""
    import gc
    p = tmp_path / "f.ppml"
    with ppml.create(p, key=ppml.LocalKey(bytes(32))) as w:
        w.write(b"data")
    kept = []
    try:
        ppml.open(p, keys=ppml.LocalKey(bytes([1] * 32)))
    except ppml.WrongKeyError as e:
        kept.append(e)  # its traceback keeps the half-built reader alive, as pytest.raises does
    fd = os.open(p, os.O_RDONLY)  # takes the number the failed open released
    kept.clear()
    gc.collect()
    os.fstat(fd)  # still this file's
    os.close(fd)
