"""ppml.serving and ppml.arrowipc: Arrow streams and serving records held to the Go side
(arrow-go, serve/clusterserving, serve/record) in both directions, and the queue client
against a real redis-server and a serve job run by `ppml run` on the simulated TEE."""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from ppml import arrowipc, serving
from ppml.serving import RecordKey, Sparse, Tensor

from conftest import REPO, _go


def f32(v):
    return serving._f32(v)


# ---------------------------------------------------------------------------------------------
# Requests: Python writes, Go (clusterserving.DecodeArrow, what the serve job runs) reads

REQUESTS = {
    "row": ({"input": [0.00632, 18, 2.31, 0, 0.538]},
            [{"name": "input", "datatype": "FP32", "shape": [5], "data": [f32(v) for v in (0.00632, 18, 2.31, 0, 0.538)]}]),
    "matrix": ({"x": [[1.5, -2], [3, 4.25], [0, 1e-3]]},
               [{"name": "x", "datatype": "FP32", "shape": [3, 2], "data": [1.5, -2, 3, 4.25, 0, f32(1e-3)]}]),
    "tensor": ({"t": Tensor([1, 2, 3, 4, 5, 6], (1, 2, 3))},
               [{"name": "t", "datatype": "FP32", "shape": [1, 2, 3], "data": [1, 2, 3, 4, 5, 6]}]),
    "empty": ({"e": Tensor([], (0, 4))}, [{"name": "e", "datatype": "FP32", "shape": [0, 4], "data": []}]),
    "scalars": ({"f0": 1.25, "f1": -3, "f2": 7.0},
                [{"name": "f0", "datatype": "FP32", "shape": [1], "data": [1.25]},
                 {"name": "f1", "datatype": "INT64", "shape": [1], "data": [-3]},
                 {"name": "f2", "datatype": "FP32", "shape": [1], "data": [7.0]}]),
    "strings": ({"tags": ["red", "green", "blue"], "s": "a|b"},
                [{"name": "tags", "datatype": "BYTES", "shape": [3], "data": ["red", "green", "blue"]},
                 {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}]),
    "image": ({"img": {"b64": base64.b64encode(b"\x89PNG fake image").decode()}},
              [{"name": "img", "datatype": "BYTES", "shape": [1], "data": ["\ufffdPNG fake image"]}]),
    "sparse": ({"sp": Sparse([[0, 1, 2], [2, 0, 1]], [1.5, 2.5, 3.5], [3, 3])},
               [{"name": "sp", "datatype": "FP32", "shape": [3, 3], "data": [0, 0, 1.5, 2.5, 0, 0, 0, 3.5, 0]}]),
    "mixed": ({"img": {"b64": "aGk="}, "x": [1, 2], "n": 4.5},
              [{"name": "img", "datatype": "BYTES", "shape": [1], "data": ["hi"]},
               {"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]},
               {"name": "n", "datatype": "FP32", "shape": [1], "data": [4.5]}]),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_python_to_go(name, tmp_path, gointerop):
    values, want = REQUESTS[name]
    p = tmp_path / "req.arrow"
    p.write_bytes(serving.encode_request(**values))
    got = gointerop("arrow-decode-request", p)
    if name == "image":  # Go prints the bytes as a (lossy) string; compare what is comparable
        assert got[0]["data"][0].endswith("PNG fake image")
        got[0]["data"] = want[0]["data"]
    assert got == want
    # and Python reads its own request back
    back = serving.decode_request(p.read_bytes())
    assert list(back) == list(values)


def test_request_numpy(tmp_path, gointerop):
    np = pytest.importorskip("numpy")
    a = np.arange(12, dtype=np.float64).reshape(3, 4) / 8
    p = tmp_path / "req.arrow"
    p.write_bytes(serving.encode_request(x=a))
    [got] = gointerop("arrow-decode-request", p)
    assert got["shape"] == [3, 4] and got["data"] == [float(np.float32(v)) for v in a.reshape(-1)]
    # BigDL's own sparse form: [indices, values, shape] as ndarrays
    p.write_bytes(serving.encode_request(sp=[np.array([[0, 1], [1, 0]]), np.array([5.0, 6.0]), np.array([2, 2])]))
    [got] = gointerop("arrow-decode-request", p)
    assert got["shape"] == [2, 2] and got["data"] == [0, 5, 6, 0]


@pytest.mark.parametrize("shape,data", [("13", ",".join(str(i / 7) for i in range(13))), ("2,3", "1,2,3,4,5,6"), ("1", "-0.5")])
def test_request_go_to_python(shape, data, tmp_path, gointerop):
    p = tmp_path / "req.arrow"
    gointerop("arrow-encode-ndarray", "input", shape, data, p)
    got = serving.decode_request(p.read_bytes())
    assert list(got) == ["input"]
    t = got["input"]
    assert list(t.shape) == [int(d) for d in shape.split(",")]
    assert t.data == [f32(float(v)) for v in data.split(",")]


def test_request_refusals():
    for values, msg in (({}, "at least one value"), ({"x": [[1, 2], [3]]}, "ragged"), ({"x": [1, "a"]}, "not a number"),
                        ({"x": True}, "booleans"), ({"x": {"other": 1}}, "'b64' or 'path'"), ({"x": object()}, "not a number")):
        with pytest.raises(ValueError, match=msg):
            serving.encode_request(**values)
    with pytest.raises(ValueError, match="holds 6 elements"):
        Tensor([1, 2], (2, 3))
    with pytest.raises(ValueError, match="indices must be 2 rows"):
        Sparse([[0, 1]], [1.0, 2.0], [2, 2])


# ---------------------------------------------------------------------------------------------
# Results: Go (clusterserving.EncodeResult, what the serve job writes) writes, Python reads,
# and the reverse

RESULTS = [
    ([{"name": "prediction", "shape": [1], "data": [24.006775]}], False, [([24.006775], [])]),
    ([{"name": "prediction", "shape": [3], "data": [1.5, -2, 3.25]}], True, [([1.5, -2, 3.25], [3])]),
    ([{"name": "probability", "shape": [1, 3], "data": [0.1, 0.7, 0.2]}, {"name": "prediction", "shape": [1], "data": [1]}],
     False, [([0.1, 0.7, 0.2], [3]), ([1], [])]),
    ([{"name": "m", "shape": [2, 2, 2], "data": [1, 2, 3, 4, 5, 6, 7, 8]}], True, [([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2])]),
    ([{"name": "e", "shape": [2, 0], "data": []}], True, [([], [2, 0])]),
]


@pytest.mark.parametrize("i", range(len(RESULTS)))
def test_result_go_to_python(i, tmp_path, gointerop):
    tensors, batched, want = RESULTS[i]
    p = tmp_path / "res.arrow"
    gointerop("arrow-encode-result", json.dumps(tensors), p, "true" if batched else "false")
    got = serving.decode_result(p.read_bytes())
    assert [(t.data, list(t.shape)) for t in got] == [([f32(v) for v in d], s) for d, s in want]


@pytest.mark.parametrize("i", range(len(RESULTS)))
def test_result_python_to_go(i, tmp_path, gointerop):
    _, _, want = RESULTS[i]
    p = tmp_path / "res.arrow"
    p.write_bytes(serving.encode_result([Tensor(d, s) for d, s in want]))
    got = gointerop("arrow-decode-result", p)
    assert [(g["data"], g["shape"]) for g in got] == [([f32(v) for v in d], s) for d, s in want]


def test_result_refusals(tmp_path):
    other = arrowipc.write_stream([arrowipc.Field("data", arrowipc.utf8())], [[["x"]]])
    with pytest.raises(serving.ServingError, match="columns data"):
        serving.decode_result(other)
    bad = arrowipc.write_stream(serving._RESULT_SCHEMA, [[[1.0, 2.0], [3, None]]])
    with pytest.raises(serving.ServingError, match="does not fit its shape"):
        serving.decode_result(bad)


# ---------------------------------------------------------------------------------------------
# General Arrow streams: every type the module writes, with nulls, both ways through arrow-go

ROWS = [
    [{"i8": -128, "i16": 32767, "i32": -2147483648, "i64": -9223372036854775808, "u8": 255, "u16": 65535,
      "u32": 4294967295, "u64": 18446744073709551615, "f32": 1.5, "f64": 0.1, "b": True, "s": "héllo ✓",
      "bin": "AAEC/w==", "ls": "large", "l": [1, -2, 3], "ll": [0.25, -1e300], "st": {"a": 7, "b": ["x", "", "z"]}},
     {"i8": None, "i16": None, "i32": None, "i64": None, "u8": None, "u16": None, "u32": None, "u64": None,
      "f32": None, "f64": None, "b": None, "s": None, "bin": None, "ls": None, "l": None, "ll": None, "st": None},
     {"i8": 0, "i16": -1, "i32": 42, "i64": 1, "u8": 0, "u16": 1, "u32": 2, "u64": 3, "f32": -0.0, "f64": 1e-300,
      "b": False, "s": "", "bin": "", "ls": "", "l": [], "ll": [None, 2.0], "st": {"a": None, "b": None}}],
    [{"i8": 1, "i16": 2, "i32": 3, "i64": 4, "u8": 5, "u16": 6, "u32": 7, "u64": 8, "f32": 9.0, "f64": 10.0, "b": True,
      "s": "second batch", "bin": "aGk=", "ls": "x", "l": [None, 5], "ll": [], "st": {"a": -1, "b": [None, "q"]}}],
]

SCHEMA = [
    arrowipc.Field("i8", arrowipc.int8()), arrowipc.Field("i16", arrowipc.int16()), arrowipc.Field("i32", arrowipc.int32()),
    arrowipc.Field("i64", arrowipc.int64()), arrowipc.Field("u8", arrowipc.uint8()), arrowipc.Field("u16", arrowipc.uint16()),
    arrowipc.Field("u32", arrowipc.uint32()), arrowipc.Field("u64", arrowipc.uint64()), arrowipc.Field("f32", arrowipc.float32()),
    arrowipc.Field("f64", arrowipc.float64()), arrowipc.Field("b", arrowipc.bool_()), arrowipc.Field("s", arrowipc.utf8()),
    arrowipc.Field("bin", arrowipc.binary()), arrowipc.Field("ls", arrowipc.large_utf8()),
    arrowipc.Field("l", arrowipc.list_(arrowipc.int32())), arrowipc.Field("ll", arrowipc.large_list(arrowipc.float64())),
    arrowipc.Field("st", arrowipc.struct([arrowipc.Field("a", arrowipc.int64()), arrowipc.Field("b", arrowipc.list_(arrowipc.utf8()))])),
]


def _py_value(name, v):
    """A JSON row value (arrow-go's form: binary as base64) as ppml.arrowipc holds it."""
    return base64.b64decode(v) if name == "bin" and v is not None else v


def _columns(rows):
    return [[_py_value(f.name, r[f.name]) for r in rows] for f in SCHEMA]


def test_arrow_types_python_to_go(tmp_path, gointerop):
    p = tmp_path / "types.arrow"
    p.write_bytes(arrowipc.write_stream(SCHEMA, [_columns(rows) for rows in ROWS]))
    out = gointerop("arrow-read", p)
    assert "error" not in out[-1], out[-1]
    assert "st: type=struct<a: int64 nullable, b: list<item: utf8, nullable> nullable>, nullable" in out[0]["schema"]
    got = [o["rows"] for o in out[1:]]
    # arrow-go's JSON leaves out nothing; compare row by row with -0.0 normalised
    assert len(got) == len(ROWS)
    for g_rows, w_rows in zip(got, ROWS):
        assert len(g_rows) == len(w_rows)
        for g, w in zip(g_rows, w_rows):
            assert g == w


def test_arrow_types_go_to_python(tmp_path, gointerop):
    src = tmp_path / "rows.json"
    src.write_text(json.dumps(ROWS))
    p = tmp_path / "types.arrow"
    gointerop("arrow-write-types", src, p)
    schema, batches = arrowipc.read_stream(p.read_bytes())
    assert [(f.name, str(f.type)) for f in schema] == [(f.name, str(f.type)) for f in SCHEMA]
    assert [b.num_rows for b in batches] == [len(r) for r in ROWS]
    for b, rows in zip(batches, ROWS):
        assert b.columns == _columns(rows)


def test_arrow_reader_refusals():
    good = arrowipc.write_stream(SCHEMA[:3], [[[1], [2], [3]]])
    for data, msg in ((b"", "no schema"), (b"\xff\xff\xff\xff", "truncated"), (good + b"x", "after the end"),
                      (good[:-20], "where|remain|outside|fewer"), (b"\xff\xff\xff\xff\x10\x00\x00\x00" + bytes(16), "metadata")):
        with pytest.raises(arrowipc.ArrowFormatError, match=msg):
            arrowipc.read_stream(data)
    with pytest.raises(arrowipc.ArrowFormatError, match="different lengths"):
        arrowipc.write_stream(SCHEMA[:2], [[[1], [1, 2]]])
    with pytest.raises(arrowipc.ArrowFormatError, match="do not fit int8"):
        arrowipc.write_stream(SCHEMA[:1], [[[300]]])


# ---------------------------------------------------------------------------------------------
# Serving records: Python seals, Go opens, and the reverse; tampering fails on both sides

STREAM, URI = "serving_stream", "req-42"


def test_records_both_ways(tmp_path, gointerop):
    key = RecordKey.generate()
    pt = serving.encode_request(input=[1, 2, 3])
    (tmp_path / "pt").write_bytes(pt)
    # Python seals a request, Go opens it
    (tmp_path / "py.rec").write_bytes(serving.seal(key, serving.REQUEST, STREAM, URI, pt))
    assert gointerop("record-open", key.hex(), "request", STREAM, URI, tmp_path / "py.rec", tmp_path / "out") == [{"ok": True}]
    assert (tmp_path / "out").read_bytes() == pt
    # Go seals a result, Python opens it; both name the key by the same id
    [sealed] = gointerop("record-seal", key.hex(), "result", STREAM, URI, tmp_path / "pt", tmp_path / "go.rec")
    assert sealed["key_id"] == key.id
    assert serving.open_record(key, serving.RESULT, STREAM, URI, (tmp_path / "go.rec").read_bytes()) == pt

    # Moved to another uri or stream, the other direction, another key: refused on both sides.
    rec = (tmp_path / "py.rec").read_bytes()
    cases = [("request", STREAM, "req-43", key, "open", "does not decrypt"),
             ("request", "other_stream", URI, key, "open", "does not decrypt"),
             ("result", STREAM, URI, key, "kind", "where a result was expected"),
             ("request", STREAM, URI, RecordKey.generate(), "unknown_key", "does not hold")]
    for kind, stream, uri, k, go_class, py_msg in cases:
        [res] = gointerop("record-open", k.hex(), kind, stream, uri, tmp_path / "py.rec", tmp_path / "out")
        assert res["class"] == go_class, (kind, stream, uri)
        with pytest.raises(serving.RecordError, match=py_msg):
            serving.open_record(k, {"request": serving.REQUEST, "result": serving.RESULT}[kind], stream, uri, rec)
    # Every flipped byte fails in Python; a sample of them in Go.
    for i in range(len(rec)):
        bad = bytearray(rec)
        bad[i] ^= 0x01
        with pytest.raises(serving.RecordError):
            serving.open_record(key, serving.REQUEST, STREAM, URI, bytes(bad))
        if i % 9 == 0 or i < 30:
            (tmp_path / "bad").write_bytes(bytes(bad))
            [res] = gointerop("record-open", key.hex(), "request", STREAM, URI, tmp_path / "bad", tmp_path / "out")
            assert "error" in res, i
    with pytest.raises(serving.RecordError, match="not a ppml serving record"):
        serving.open_record(key, serving.REQUEST, STREAM, URI, pt)


def test_record_key_files(tmp_path):
    k = RecordKey.generate()
    (tmp_path / "record.key").write_text(k.hex() + "\n")
    assert RecordKey.load(tmp_path / "record.key").id == k.id
    assert "RecordKey(id=" in repr(k) and k.hex() not in repr(k)
    (tmp_path / "bad.key").write_text("not hex\n")
    with pytest.raises(ValueError, match="64 hex digits"):
        RecordKey.load(tmp_path / "bad.key")
    with pytest.raises(ValueError, match="no record key"):
        serving.Queue(redis=object())


# ---------------------------------------------------------------------------------------------
# End to end: redis-server, a serve job run by `ppml run` (simulated TEE), the Python client,
# and the example's Go client for comparison

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (make deps installs it)")
    redis = pytest.importorskip("redis", reason="python3-redis is not installed (make deps installs it)")
    port = _free_port()
    d = tmp_path / "redis"
    d.mkdir()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
                             "--appendonly", "no", "--daemonize", "no", "--logfile", str(d / "redis.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            try:
                c.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            raise AssertionError("redis-server did not start: " + (d / "redis.log").read_text())
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


FEATURES = 6


@pytest.fixture
def serve_job(tmp_path, ppml_bin, sim_dir, redis_server):
    """A serve job on an XGBoost regressor trained here, its model and record key encrypted
    under a local owner key, queue on redis_server; yields (record key, xgboost booster,
    rows, redis port)."""
    xgb = pytest.importorskip("xgboost", reason="python3-xgboost is not installed (make deps installs it)")
    np = pytest.importorskip("numpy")
    import ppml
    d = tmp_path / "job"
    d.mkdir()
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, FEATURES)).astype(np.float32)
    y = x @ np.arange(1, FEATURES + 1, dtype=np.float32) + rng.normal(scale=0.1, size=400).astype(np.float32)
    booster = xgb.train({"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror", "nthread": 1},
                        xgb.DMatrix(x, label=y, feature_names=[f"f{i}" for i in range(FEATURES)]), num_boost_round=20)
    booster.save_model(str(d / "model.json"))
    owner = ppml.LocalKey.generate(str(d / "owner.key"))
    ppml.encrypt_file(str(d / "model.json"), key=owner, content_type="model")
    os.remove(d / "model.json")
    rkey = RecordKey.generate()
    (d / "record.key").write_text(rkey.hex() + "\n")
    ppml.encrypt_file(str(d / "record.key"), key=owner)
    (d / "job.yaml").write_text(f"""version: 1
name: python-queue-test
engine: serve
inputs:
  house: model.json.ppml
  record_key: record.key.ppml
parameters:
  models:
    - {{name: house, version: "1", input: house, max_batch: 16}}
  listen: {{http: "127.0.0.1:{_free_port()}", grpc: "off"}}
  hosts: [127.0.0.1]
  queue: {{redis: "127.0.0.1:{redis_server}", record_keys: [record_key]}}
""")
    log = open(d / "run.log", "wb")
    env = dict(os.environ, PPML_SIM_DIR=str(sim_dir))
    proc = subprocess.Popen([ppml_bin, "run", "--manifest", "job.yaml", "--key", "owner.key", "--tee", "sim"], cwd=d, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "queue serving_stream: consumer" not in (d / "run.log").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the serve job did not start:\n" + (d / "run.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield rkey, booster, x, redis_server, d
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (d / "run.log").read_text(errors="replace")


@pytest.fixture
def go_client(tmp_path):
    exe = tmp_path / "serve-client"
    _go(["build", "-o", str(exe), "./examples/serve/client"])
    return str(exe)


def test_queue_end_to_end(serve_job, go_client):
    xgb = pytest.importorskip("xgboost")
    rkey, booster, x, port, d = serve_job
    rows = x[:8]
    want = booster.predict(xgb.DMatrix(rows, feature_names=[f"f{i}" for i in range(FEATURES)]))

    with serving.Queue("127.0.0.1", port, key=d / "record.key") as q:
        # one row per request, as the example sends it: the result drops the batch dimension
        uris = [q.enqueue(input=[float(v) for v in row]) for row in rows]
        got = [q.result(u, timeout=60) for u in uris]
        for (t,), w in zip(got, want):
            assert t.shape == () and t.data == [float(w)]
        # a matrix of rows: one result keeps the batch dimension
        [t] = q.predict(input=rows, timeout=60)
        assert t.shape == (8,) and t.data == [float(w) for w in want]
        # one scalar per feature, named by the features
        [t] = q.predict(timeout=60, **{f"f{i}": float(rows[0][i]) for i in range(FEATURES)})
        assert t.data == [float(want[0])]
        # the result was deleted after reading; what Redis held was a sealed record
        assert q.query(uris[0]) is None
        u = q.enqueue(input=[float(v) for v in rows[1]])
        q.result(u, timeout=60, delete=False)
        raw = base64.b64decode(q.redis.hget(serving.result_key(q.stream, u), "value"))
        assert raw[:4] == b"PSR1" and b"data" not in raw

    # The example's Go client, same row, same key: the same answer.
    row = ",".join(repr(float(v)) for v in rows[0])
    out = subprocess.run([go_client, "-record-key", str(d / "record.key"), "queue", f"127.0.0.1:{port}", row],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    go_vals = [float(v) for v in re.search(r"\[([^\]]*)\]", out.stdout).group(1).split()]
    assert [f32(v) for v in go_vals] == [float(want[0])] == got[0][0].data
    # The example's Python client prints the same line.
    out = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "examples/serve/queue_client.py"), "--record-key",
                          str(d / "record.key"), f"127.0.0.1:{port}", row], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "python")))
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"queue result for [0-9a-f-]{36} \(sealed in Redis, opened here\): \[(\S+)\]\n", out.stdout), out.stdout
    assert f32(float(re.search(r"\[(\S+)\]", out.stdout).group(1))) == float(want[0])

    # Refusals come back as NaN with the job's dead-letter reason.
    with serving.Queue("127.0.0.1", port, key=RecordKey.generate()) as q:
        with pytest.raises(serving.ServingError, match="key"):
            q.result(q.enqueue(input=[1.0] * FEATURES), timeout=60)
    with serving.Queue("127.0.0.1", port, plaintext=True) as q:
        with pytest.raises(serving.ServingError, match="plaintext"):
            q.result(q.enqueue(input=[1.0] * FEATURES), timeout=60)
    with serving.Queue("127.0.0.1", port, key=d / "record.key") as q:
        with pytest.raises(serving.ServingError, match="features|shape"):
            q.result(q.enqueue(input=[1.0, 2.0]), timeout=60)
        with pytest.raises(serving.NoResultError, match="no result"):
            q.result("never-sent", timeout=0.2)
