"""Seeded random-input tests of every parser of untrusted bytes in the SDK: envelope headers and
bodies (both readers), key files, key references, audit exports and entries, tree heads. Each
must fail only with its documented errors. PPML_FUZZ_ITERATIONS (default 2000) sets the length;
run with a large value for a long session."""
import io
import os
import random

import pytest

import ppml
from ppml import audit, gojson, keyref

N = int(os.environ.get("PPML_FUZZ_ITERATIONS", "2000"))


def mutate(r, b):
    b = bytearray(b)
    for _ in range(r.randrange(1, 6)):
        op = r.randrange(5)
        if op == 0 and b:
            b[r.randrange(len(b))] = r.randrange(256)
        elif op == 1 and b:
            del b[r.randrange(len(b)):][:r.randrange(1, 32)]
        elif op == 2:
            i = r.randrange(len(b) + 1)
            b[i:i] = r.randbytes(r.randrange(1, 16))
        elif op == 3 and b:
            b = b[:r.randrange(len(b))]
        elif op == 4 and len(b) > 8:
            i, j = sorted(r.sample(range(len(b)), 2))
            b[i:j] = b[i:j][::-1]
    return bytes(b)


def test_envelope_readers():
    k = ppml.LocalKey(bytes(range(32)))
    seeds = []
    for n, known in ((0, True), (100, True), (300, False)):
        buf = io.BytesIO()
        with ppml.create(buf, key=k, segment_size=64, size=n if known else None) as w:
            w.write(bytes(n))
        seeds.append(buf.getvalue())
    r = random.Random(1)
    for _ in range(N):
        data = mutate(r, r.choice(seeds))
        for src in (io.BytesIO(data), io.BufferedReader(_Pipe(data))):
            try:
                with ppml.open(src, keys=k) as f:
                    f.read()
            except ppml.EnvelopeError:
                pass


class _Pipe(io.RawIOBase):
    def __init__(self, b):
        self._b = io.BytesIO(b)

    def readable(self):
        return True

    def readinto(self, buf):
        return self._b.readinto(buf)


def test_key_files_and_refs():
    seed = b"# key id: a68653034fd9729f34cfb04b682095a4\nppml-local-key-v1:" + bytes(range(0xa0, 0xc0)).hex().encode() + b"\n"
    r = random.Random(2)
    for _ in range(N):
        try:
            ppml.LocalKey.parse(mutate(r, seed))
        except ppml.KeyFileError:
            pass
        s = mutate(r, b"kms://[2001:db8::1]:8443/a/b.c@12").decode("latin-1")
        try:
            assert str(keyref.parse(s)) == s
        except ValueError:
            pass


def test_audit_parsers(tmp_path, gointerop):
    gointerop("audit-export", "-dir", tmp_path, "-signer", "ed25519", "-entries", 5, "-checkpoint-every", 2)
    export = (tmp_path / "export.jsonl").read_bytes()
    pub = (tmp_path / "audit.pub").read_bytes()
    lines = export.split(b"\n")
    r = random.Random(3)
    for _ in range(N // 4):
        res = audit.check_export(mutate(r, export), pub)
        assert isinstance(res, audit.Result)
        line = mutate(r, r.choice(lines[1:-1]))
        try:
            audit.Entry.decode(line)
        except ppml.VerificationError:
            pass
        try:
            audit.TreeHead.from_json(gojson.loads(mutate(r, lines[0]), trailing_ok=True)).verify(pub)
        except (gojson.GoJSONError, ppml.VerificationError):
            pass


def test_arrow_and_serving_parsers():
    """ppml.arrowipc.read_stream and the serving decoders take bytes from Redis (outside the
    TEE): mutated requests and results fail only with ArrowFormatError or ServingError."""
    from ppml import arrowipc, serving
    seeds = [
        serving.encode_request(input=[[1.5, 2.0], [3.0, 4.0]], s="a|b", f=2.5, i=3),
        serving.encode_request(sp=serving.Sparse([[0, 1], [1, 0]], [5.0, 6.0], [2, 2]), img={"b64": "aGk="}),
        serving.encode_result([serving.Tensor([24.5], ()), serving.Tensor([0.1, 0.9], (2,))]),
        arrowipc.write_stream([arrowipc.Field("l", arrowipc.large_list(arrowipc.utf8())), arrowipc.Field("b", arrowipc.bool_()),
                               arrowipc.Field("x", arrowipc.binary())], [[[["a", None], None], [True, None], [b"\x00", None]]]),
    ]
    r = random.Random(15)
    for i in range(N):
        data = mutate(r, seeds[i % len(seeds)])
        for decode in (arrowipc.read_stream, serving.decode_request, serving.decode_result):
            try:
                decode(data)
            except (arrowipc.ArrowFormatError, serving.ServingError):
                pass
    key = serving.RecordKey(bytes(32))
    rec = serving.seal(key, serving.RESULT, "s", "u", seeds[2])
    for _ in range(N // 4):
        try:
            serving.open_record(key, serving.RESULT, "s", "u", mutate(r, rec))
        except serving.RecordError:
            pass
