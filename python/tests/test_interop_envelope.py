"""Envelopes across implementations: files written by Go (package envelope, and the ppml CLI)
are read by Python and files written by Python are read by Go, for every content type and every
size class of Go's TestRoundTrip; tampered files fail in Python with the class Go reports."""
import hashlib
import io
import os
import random
import subprocess

import pytest

import ppml

MIB = 1 << 20
SIZES = [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 7]  # Go TestRoundTrip's classes at 1 MiB segments
BIG = 100 * MIB  # ... and its 100 MiB class
TYPES = ["bytes", "csv", "json", "parquet", "model"]


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    k = ppml.LocalKey.generate(d / "owner.key")
    return str(d / "owner.key"), k


def data(n, seed=0):
    return random.Random(n * 31 + seed).randbytes(n)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def py_read_all(path, k):
    with ppml.open(path, keys=k) as f:
        random_access = f.read()
        ctype = f.header.content_type_name
    with open(path, "rb") as raw:
        stream = ppml.open(io.BufferedReader(_NoSeek(raw)), keys=k).read()
    assert stream == random_access
    return random_access, ctype


class _NoSeek(io.RawIOBase):
    def __init__(self, f):
        self._f = f

    def readable(self):
        return True

    def readinto(self, b):
        return self._f.readinto(b)


MODES = {"known": [], "stream": ["-stream"], "two-phase": ["-two-phase"]}  # how Go records the length


def test_go_writes_python_reads(tmp_path, keyfile, gointerop):
    kpath, k = keyfile
    for mode, flags in MODES.items():
        for t in TYPES:
            pairs = []
            for n in SIZES:
                src = tmp_path / f"{t}-{n}.plain"
                src.write_bytes(data(n))
                pairs += [src, tmp_path / f"{t}-{n}-{mode}.ppml"]
            gointerop("encrypt", "-key", kpath, "-type", t, *flags, *pairs)
            for n in SIZES:
                got, ctype = py_read_all(tmp_path / f"{t}-{n}-{mode}.ppml", k)
                assert (len(got), sha(got), ctype) == (n, sha(data(n)), t)
                h = ppml.inspect(tmp_path / f"{t}-{n}-{mode}.ppml")
                assert (h.length_known, h.length_after_wrap) == (mode != "stream", mode == "two-phase")
                assert h.segment_size == MIB


def test_python_writes_go_reads(tmp_path, keyfile, gointerop):
    kpath, k = keyfile
    files, want = [], []
    for known in (True, False):
        for t in TYPES:
            for n in SIZES:
                p = tmp_path / f"{t}-{n}-{known}.ppml"
                with ppml.create(p, key=k, content_type=t, size=n if known else None) as w:
                    w.write(data(n))
                files.append(p)
                want.append((t, n))
    for (t, n), r in zip(want, gointerop("decrypt", "-key", kpath, *files)):
        for side in ("reader", "file"):
            assert r[side]["ok"], r
            assert (r[side]["emitted"], r[side]["sha256"], r[side]["content_type"]) == (n, sha(data(n)), t)


def test_100mib_both_ways(tmp_path, keyfile, gointerop, ppml_bin):
    kpath, k = keyfile
    plain = data(BIG)
    src = tmp_path / "big.bin"
    src.write_bytes(plain)
    subprocess.run([ppml_bin, "encrypt", "--key", kpath, "-o", tmp_path / "go.ppml", src], check=True, capture_output=True)
    with ppml.open(tmp_path / "go.ppml", keys=k) as f:
        assert f.size == BIG and sha(f.read()) == sha(plain)
    ppml.encrypt_file(src, tmp_path / "py.ppml", key=k)
    os.unlink(src)
    subprocess.run([ppml_bin, "decrypt", "--key", kpath, "-o", src, tmp_path / "py.ppml"], check=True, capture_output=True)
    assert sha(src.read_bytes()) == sha(plain)


def test_cli_round_trip(tmp_path, keyfile, ppml_bin):
    """The ppml CLI itself (regular files record the length, stdin does not) against Python."""
    kpath, k = keyfile
    for t, ext in (("csv", "csv"), ("json", "json"), ("parquet", "parquet"), ("model", "model"), ("bytes", "bin")):
        plain = data(3 * MIB + 7, seed=len(t))
        src = tmp_path / f"in.{ext}"
        src.write_bytes(plain)
        subprocess.run([ppml_bin, "encrypt", "--key", kpath, "--type", t, "-o", tmp_path / "file.ppml", "--force", src],
                       check=True, capture_output=True)
        with open(src, "rb") as stdin, open(tmp_path / "pipe.ppml", "wb") as out:
            subprocess.run([ppml_bin, "encrypt", "--key", kpath, "--type", t, "-"], stdin=stdin, stdout=out, check=True)
        for name, known in (("file.ppml", True), ("pipe.ppml", False)):
            got, ctype = py_read_all(tmp_path / name, k)
            assert (got == plain, ctype, ppml.inspect(tmp_path / name).length_known) == (True, t, known)
        p = tmp_path / f"py.{ext}.ppml"
        with ppml.create(p, key=kpath, content_type=t, overwrite=True) as w:
            w.write(plain)
        r = subprocess.run([ppml_bin, "decrypt", "--key", kpath, "-o", "-", p], check=True, capture_output=True)
        assert r.stdout == plain
        r = subprocess.run([ppml_bin, "inspect", "--json", p], check=True, capture_output=True, text=True)
        assert f'"content_type": "{t}"' in r.stdout or f'"content_type":"{t}"' in r.stdout


def test_golden_vector_both_ways(repo, gointerop):
    d = os.path.join(repo, "envelope", "testdata")
    [r] = gointerop("decrypt", "-key", os.path.join(d, "golden.key"), os.path.join(d, "golden.ppml"))
    want = open(os.path.join(d, "golden.txt"), "rb").read()
    assert r["file"]["sha256"] == r["reader"]["sha256"] == sha(want)
    with ppml.open(os.path.join(d, "golden.ppml"), keys=os.path.join(d, "golden.key")) as f:
        assert f.read() == want


SEG = 64


def variants(good, good_stream, other_file, hl, two_phase=b""):
    """The tampered files of Go's TestBadInput, by name (and of a two-phase file)."""
    out = {"empty": b"", "not an envelope": b"name,age\nAndy,30\n", "random": random.Random(9).randbytes(500),
           "almost magic": b"PPMLENX" + bytes(100)}
    v2 = bytearray(good)
    v2[7] = 2
    out["version 2"] = bytes(v2)
    for name, ct in (("known", good), ("stream", good_stream), ("two-phase", two_phase)):
        if not ct:
            continue
        for n in range(1, len(ct)):
            out[f"{name} truncated to {n}"] = ct[:n]
        for i in range(len(ct) * 8):
            b = bytearray(ct)
            b[i // 8] ^= 1 << (i % 8)
            out[f"{name} bit {i}"] = bytes(b)
        seg = lambda b, i: (hl + i * (SEG + 16), min(len(b), hl + (i + 1) * (SEG + 16)))
        for a, c in ((0, 1), (1, 2), (0, 2)):
            b = bytearray(ct)
            (s1, e1), (s2, e2) = seg(b, a), seg(b, c)
            b[s1:e1], b[s2:e2] = ct[s2:e2], ct[s1:e1]
            out[f"{name} swapped {a},{c}"] = bytes(b)
        for i in range(4):
            b = bytearray(ct)
            s, e = seg(b, i)
            b[s:e] = other_file[s:e]
            out[f"{name} spliced {i}"] = bytes(b)
        out[f"{name} header swap"] = ct[:hl] + other_file[hl:]
        for j, extra in enumerate((b"\0", bytes(16), bytes(SEG + 16), ct[seg(ct, 3)[0]:], ct[hl:hl + SEG + 16])):
            out[f"{name} appended {j}"] = ct + extra
    return out


def py_result(ct, k):
    """(random-access kind, sequential kind, bytes the sequential reader released)."""
    def kind(e):
        return e.kind if e is not None else "ok"
    try:
        with ppml.open(io.BytesIO(ct), keys=k) as f:
            f.read()
        err_r = None
    except ppml.EnvelopeError as e:
        err_r = e
    released = bytearray()
    try:
        s = ppml.open(io.BufferedReader(_NoSeek(io.BytesIO(ct))), keys=k)
        while True:
            b = s.read(SEG)
            if not b:
                break
            released += b
        err_s = None
    except ppml.EnvelopeError as e:
        err_s = e
    return kind(err_r), kind(err_s), len(released)


def test_tampered_files_fail_alike(tmp_path, keyfile, gointerop):
    """Every variant fails in Python with the class Go reports, for the random-access reader
    (Go: envelope.Open) and the sequential one (Go: envelope.Reader), and the sequential readers
    release the same number of authenticated bytes."""
    kpath, k = keyfile
    plain = random.Random(4).randbytes(3 * SEG + 7)
    (tmp_path / "p").write_bytes(plain)
    gointerop("encrypt", "-key", kpath, "-type", "csv", "-segment-size", SEG,
              tmp_path / "p", tmp_path / "good", tmp_path / "p", tmp_path / "other")
    gointerop("encrypt", "-key", kpath, "-type", "csv", "-segment-size", SEG, "-stream", tmp_path / "p", tmp_path / "stream")
    gointerop("encrypt", "-key", kpath, "-type", "csv", "-segment-size", SEG, "-two-phase", tmp_path / "p", tmp_path / "2p")
    good, other, stream, two = ((tmp_path / n).read_bytes() for n in ("good", "other", "stream", "2p"))
    hl = len(ppml.inspect(io.BytesIO(good)).raw)
    vs = variants(good, stream, other, hl, two)
    d = tmp_path / "v"
    d.mkdir()
    names = sorted(vs)
    for i, n in enumerate(names):
        (d / str(i)).write_bytes(vs[n])
    go = gointerop("decrypt", "-key", kpath, *[d / str(i) for i in range(len(names))])
    kinds = set()
    for n, g in zip(names, go):
        want = (g["file"]["kind"] if not g["file"]["ok"] else "ok", g["reader"]["kind"] if not g["reader"]["ok"] else "ok",
                g["reader"]["emitted"])
        assert py_result(vs[n], k) == want, n
        kinds.update(want[:2])
    assert kinds >= {"not_envelope", "unsupported", "corrupt_header", "truncated", "trailing_data", "auth"}
    # The wrong key, with both key ids in the message.
    other_key = ppml.LocalKey(bytes(32))
    with pytest.raises(ppml.WrongKeyError) as ei:
        ppml.open(io.BytesIO(good), keys=other_key)
    assert k.key_id in str(ei.value) and other_key.key_id in str(ei.value)
