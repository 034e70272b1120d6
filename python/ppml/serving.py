"""A client of a ppml serve job's Cluster Serving queue (docs/serve.md).

A request goes into a Redis stream (``XADD <stream> uri <uri> data <base64>``) and its
result comes back in the hash ``cluster-serving_<stream>:<uri>`` (field ``value``), as with
BigDL Cluster Serving's ``InputQueue``/``OutputQueue``. ``data`` and ``value`` are Arrow IPC
streams (``ppml.arrowipc``: Debian 12 has no pyarrow). Redis runs outside the TEE, so with a
record key both travel as ppml serving records (docs/formats/serving-record.md): sealed for
the request's stream, uri and direction, opened only by the serve job and by clients that
hold the key::

    from ppml import serving
    q = serving.Queue("127.0.0.1", 6390, key="record.key")
    uri = q.enqueue(input=[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98])
    [prediction] = q.result(uri)            # waits; a Tensor: .data, .shape, .tolist(), .numpy()

Values (keyword arguments, one column each, as BigDL's client takes them):

- a numpy array, a ``Tensor``, or a (nested) list of numbers: an ndarray (float32 data, int32
  shape, in BigDL's four-row struct layout);
- ``Sparse(indices, values, shape)`` or BigDL's ``[indices, values, shape]`` of numpy arrays:
  a sparse ndarray (indices: one row of coordinates per dimension);
- a Python float or int: a float32 or int64 scalar (tabular models take one per feature,
  named by the feature);
- a str: a string (a base64 image, or "|"-separated elements); a list of str: "|"-joined;
  ``{"b64": text}`` a base64 image; ``{"path": file}`` an image file's bytes, base64-encoded.

The Redis client is Debian's ``python3-redis`` (imported only when a ``Queue`` connects);
pass ``redis=`` to use a client you configured (TLS, password, Sentinel).
"""
import base64
import binascii
import math
import os
import struct
import time
import uuid

from . import arrowipc
from .errors import PPMLError

__all__ = ["ServingError", "NoResultError", "RecordError", "RecordKey", "Tensor", "Sparse", "Queue",
           "encode_request", "decode_request", "encode_result", "decode_result", "seal", "open_record",
           "result_key", "DEFAULT_STREAM", "REQUEST", "RESULT"]

DEFAULT_STREAM = "serving_stream"
RESULT_PREFIX = "cluster-serving_"
NAN = "NaN"
REQUEST, RESULT = 1, 2


class ServingError(PPMLError):
    """A request the serve job could not answer, or a queue entry this client cannot read."""

    kind = "serving"


class NoResultError(ServingError):
    """No result arrived in time."""

    kind = "no_result"


class RecordError(ServingError):
    """A serving record that does not open: not a record, another key, altered or moved."""

    kind = "record"


def result_key(stream, uri):
    """The hash a request's result is written to."""
    return f"{RESULT_PREFIX}{stream}:{uri}"


# ---------------------------------------------------------------------------------------------
# Serving records (docs/formats/serving-record.md)

_MAGIC = b"PSR1"
_KEY_ID_INFO = b"ppml serving record key id"
_RECORD_INFO = b"ppml serving record v1"
_HEADER_LEN = 4 + 1 + 8 + 16
_OVERHEAD = _HEADER_LEN + 16


def _hkdf(ikm, salt, info, n):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


class RecordKey:
    """A serving record key: 32 secret bytes, named in records by an 8-byte id."""

    SIZE = 32

    def __init__(self, secret):
        secret = bytes(secret)
        if len(secret) != self.SIZE:
            raise ValueError(f"a serving record key is {self.SIZE} bytes, got {len(secret)}")
        self._secret = secret
        self._id = _hkdf(secret, None, _KEY_ID_INFO, 8)

    @classmethod
    def generate(cls):
        return cls(os.urandom(cls.SIZE))

    @classmethod
    def load(cls, path):
        """A key file as the serve example writes it: 64 hex digits (and a newline)."""
        with open(path, "rb") as f:
            text = f.read(1024)
        try:
            secret = binascii.unhexlify(text.strip())
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) != cls.SIZE:
            raise ValueError(f"{path}: a serving record key file holds 64 hex digits")
        return cls(secret)

    @property
    def id(self):
        """The key id in hex, as records name it."""
        return self._id.hex()

    def hex(self):
        return self._secret.hex()

    def __repr__(self):
        return f"RecordKey(id={self.id})"


def _as_key(key):
    if key is None or isinstance(key, RecordKey):
        return key
    if isinstance(key, (bytes, bytearray)):
        return RecordKey(key)
    return RecordKey.load(os.fspath(key))


def _aad(header, stream, uri):
    s, u = stream.encode("utf-8"), uri.encode("utf-8")
    if len(s) >= 1 << 16 or len(u) >= 1 << 16:
        raise ValueError("serving record: stream name or uri longer than 65535 bytes")
    return header + struct.pack(">H", len(s)) + s + struct.pack(">H", len(u)) + u


def seal(key, kind, stream, uri, plaintext):
    """A serving record of kind (REQUEST or RESULT) for (stream, uri), under key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = _as_key(key)
    header = _MAGIC + bytes([kind]) + key._id + os.urandom(16)
    aad = _aad(header, stream, uri)
    g = AESGCM(_hkdf(key._secret, header[13:29], _RECORD_INFO, 32))
    return header + g.encrypt(bytes(12), bytes(plaintext), aad)


def open_record(keys, kind, stream, uri, rec):
    """The plaintext of a record of kind for (stream, uri), under one of keys (a RecordKey
    or a list of them). Raises RecordError naming what failed, never the contents."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    import hmac
    ring = [_as_key(k) for k in (keys if isinstance(keys, (list, tuple)) else [keys])]
    rec = bytes(rec)
    if len(rec) < _OVERHEAD or rec[:4] != _MAGIC:
        raise RecordError("not a ppml serving record")
    aad = _aad(rec[:_HEADER_LEN], stream, uri)
    if rec[4] != kind:
        names = {REQUEST: "request", RESULT: "result"}
        raise RecordError(f"serving record: a {names.get(rec[4], f'kind {rec[4]}')} record where a {names[kind]} was expected")
    key = next((k for k in ring if hmac.compare_digest(k._id, rec[5:13])), None)
    if key is None:
        raise RecordError(f"the record is sealed under a key this client does not hold (key id {rec[5:13].hex()})")
    g = AESGCM(_hkdf(key._secret, rec[13:29], _RECORD_INFO, 32))
    try:
        return g.decrypt(bytes(12), rec[_HEADER_LEN:], aad)
    except InvalidTag:
        raise RecordError("the record does not decrypt: wrong key, altered, or moved to another stream or uri") from None


# ---------------------------------------------------------------------------------------------
# Values and their Arrow form

def _f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _fmt32(v):
    """The shortest decimal that reads back as the same float32 (what Go prints for one)."""
    if math.isnan(v) or math.isinf(v):
        return repr(v)
    for p in range(1, 10):
        s = f"{v:.{p}g}"
        if _f32(float(s)) == v:
            return s
    return repr(v)


class Tensor:
    """An n-dimensional value: flat row-major ``data`` and its ``shape`` (a tuple)."""

    def __init__(self, data, shape=None, dtype="float32"):
        self.data = list(data)
        self.shape = tuple(int(d) for d in (shape if shape is not None else (len(self.data),)))
        self.dtype = dtype
        n = 1
        for d in self.shape:
            if d < 0:
                raise ValueError(f"shape {list(self.shape)} has a negative dimension")
            n *= d
        if n != len(self.data):
            raise ValueError(f"shape {list(self.shape)} holds {n} elements, data has {len(self.data)}")

    def tolist(self):
        """Nested lists (a scalar for shape ())."""
        def nest(flat, shape):
            if not shape:
                return flat[0]
            step = len(flat) // shape[0] if shape[0] else 0
            return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
        return nest(self.data, self.shape)

    def numpy(self):
        import numpy as np
        return np.array(self.data, dtype=self.dtype).reshape(self.shape)

    def __eq__(self, other):
        return isinstance(other, Tensor) and (self.data, self.shape) == (other.data, other.shape)

    def __str__(self):
        """The elements as Go prints a slice of them (float32 in its shortest form)."""
        return "[" + " ".join(_fmt32(v) if self.dtype == "float32" else str(v) for v in self.data) + "]"

    def __repr__(self):
        data = "[" + ", ".join(_fmt32(v) if self.dtype == "float32" else repr(v) for v in self.data) + "]"
        return f"Tensor(shape={list(self.shape)}, data={data})"


class Sparse:
    """A sparse tensor: ``indices`` holds one row of coordinates per dimension of ``shape``
    (as BigDL's client sends it), ``values`` the elements at those coordinates."""

    def __init__(self, indices, values, shape):
        rows = [list(_flat_numbers(r, "indices")[0]) for r in _rows(indices)]
        self.indices = rows
        self.values = list(_flat_numbers(values, "values")[0])
        self.shape = [int(d) for d in _flat_numbers(shape, "shape")[0]]
        if len(rows) != len(self.shape) or any(len(r) != len(self.values) for r in rows):
            raise ValueError(f"sparse tensor: indices must be {len(self.shape)} rows of {len(self.values)} coordinates")


def _rows(x):
    if hasattr(x, "tolist"):
        x = x.tolist()
    return list(x)


def _flat_numbers(x, what):
    """(flat list, shape) of a numpy array, Tensor or nested list of numbers."""
    if isinstance(x, Tensor):
        return x.data, list(x.shape)
    if hasattr(x, "shape") and hasattr(x, "tolist"):  # numpy
        return list(x.reshape(-1).tolist()) if x.shape != () else [x.tolist()], list(x.shape)
    shape, flat = [], []

    def walk(v, depth):
        if isinstance(v, (list, tuple)):
            if depth == len(shape):
                shape.append(len(v))
            elif shape[depth] != len(v):
                raise ValueError(f"{what}: ragged nested list (rows of {shape[depth]} and {len(v)})")
            for e in v:
                walk(e, depth + 1)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if depth != len(shape):
                raise ValueError(f"{what}: ragged nested list")
            flat.append(v)
        else:
            raise ValueError(f"{what}: {type(v).__name__} is not a number")
    walk(x, 0)
    return flat, shape


_NDARRAY = arrowipc.struct([
    arrowipc.Field("indiceData", arrowipc.list_(arrowipc.int32())),
    arrowipc.Field("indiceShape", arrowipc.list_(arrowipc.int32())),
    arrowipc.Field("data", arrowipc.list_(arrowipc.float32())),
    arrowipc.Field("shape", arrowipc.list_(arrowipc.int32())),
])


def _column(name, value):
    """(Field, rows) of one request value."""
    if isinstance(value, dict):
        if "b64" in value:
            return arrowipc.Field(name, arrowipc.utf8()), [str(value["b64"])]
        if "path" in value:
            with open(value["path"], "rb") as f:
                return arrowipc.Field(name, arrowipc.utf8()), [base64.b64encode(f.read()).decode("ascii")]
        raise ValueError(f"value {name!r}: a dict needs 'b64' or 'path'")
    if isinstance(value, str):
        return arrowipc.Field(name, arrowipc.utf8()), [value]
    if isinstance(value, bool):
        raise ValueError(f"value {name!r}: booleans are not a Cluster Serving value")
    if isinstance(value, float):
        return arrowipc.Field(name, arrowipc.float32()), [value]
    if isinstance(value, int):
        return arrowipc.Field(name, arrowipc.int64()), [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return arrowipc.Field(name, arrowipc.utf8()), ["|".join(value)]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(hasattr(v, "shape") for v in value):
        value = Sparse(*value)  # BigDL's [indices, values, shape]
    if isinstance(value, Sparse):
        idx = [i for row in value.indices for i in row]
        return arrowipc.Field(name, _NDARRAY), [
            {"indiceData": [int(i) for i in idx]}, {"indiceShape": [len(value.indices), len(value.values)]},
            {"data": [float(v) for v in value.values]}, {"shape": value.shape}]
    try:
        flat, shape = _flat_numbers(value, f"value {name!r}")
    except ValueError as e:
        raise ValueError(f"{e}; values are numbers, arrays, strings, Sparse or image dicts") from None
    # BigDL's layout: four rows, row i setting only member i.
    return arrowipc.Field(name, _NDARRAY), [
        {"indiceData": []}, {"indiceShape": []}, {"data": [float(v) for v in flat]}, {"shape": [int(d) for d in shape]}]


def encode_request(**values):
    """The Arrow IPC stream of a request: one column per value, in order."""
    if not values:
        raise ValueError("a request needs at least one value")
    fields, cols = [], []
    for name, v in values.items():
        f, rows = _column(name, v)
        fields.append(f)
        cols.append(rows)
    n = max(len(c) for c in cols)
    cols = [c + [None] * (n - len(c)) for c in cols]  # a value is in row 0; other rows null
    try:
        return arrowipc.write_stream(fields, [cols])
    except arrowipc.ArrowFormatError as e:
        raise ValueError(str(e)) from None


def _densify(name, shape, values, indices, indice_shape):
    """The dense elements of a sparse ndarray (indices: rank rows of nnz coordinates)."""
    n = 1
    for d in shape:
        n *= d
    if len(indice_shape) != 2 or any(d < 0 for d in shape) or n > 1 << 24:
        raise ServingError(f"sparse value {name!r}: indiceShape {indice_shape} or shape {shape} is not valid")
    rank, nnz = indice_shape
    if rank != len(shape) or nnz != len(values) or len(indices) != rank * nnz:
        raise ServingError(f"sparse value {name!r}: {len(indices)} indices as {rank}x{nnz} for {len(values)} values of a rank-{len(shape)} shape")
    dense = [0.0] * n
    for k in range(nnz):
        off = 0
        for d in range(rank):
            i = int(indices[d * nnz + k])
            if not 0 <= i < shape[d]:
                raise ServingError(f"sparse value {name!r}: value {k} has index {i} outside dimension {d} of size {shape[d]}")
            off = off * shape[d] + i
        dense[off] = values[k]
    return dense


def decode_request(data):
    """The values of a request stream, by name: Tensors for ndarrays and numbers, str for
    strings (as the serve job reads them: row 0, ndarray members concatenated over rows)."""
    schema, batches = arrowipc.read_stream(data)
    if len(batches) != 1:
        raise ServingError(f"a request holds one record batch, this stream has {len(batches)}")
    b = batches[0]
    out = {}
    for f, col in zip(schema, b.columns):
        if f.type.kind == "struct":
            members = {}
            for c in f.type.children:
                members[c.name] = [x for row in col if row is not None and row.get(c.name) is not None for x in row[c.name]]
            dtype = "float32"
            data_field = next((c for c in f.type.children if c.name == "data"), None)
            if data_field is not None and data_field.type.kind == "list":
                dtype = str(data_field.type.children[0].type)
            data, shape = members.get("data", []), members.get("shape", [])
            if members.get("indiceShape"):
                data = _densify(f.name, shape, data, members.get("indiceData", []), members["indiceShape"])
            try:
                out[f.name] = Tensor(data, shape, dtype)
            except ValueError as e:
                raise ServingError(f"value {f.name!r}: {e}") from None
        elif f.type.kind in ("float", "int"):
            out[f.name] = Tensor([col[0]], (1,), str(f.type))
        else:
            out[f.name] = col[0]
    return out


_RESULT_SCHEMA = [arrowipc.Field("data", arrowipc.float32()), arrowipc.Field("shape", arrowipc.int32())]


def encode_result(tensors):
    """A result stream as the serve job writes it: one batch per tensor, columns data
    (float32) and shape (int32), the shorter padded with nulls."""
    batches = []
    for t in tensors:
        data, shape = [float(v) for v in t.data], list(t.shape)
        n = max(len(data), len(shape))
        batches.append([data + [None] * (n - len(data)), shape + [None] * (n - len(shape))])
    return arrowipc.write_stream(_RESULT_SCHEMA, batches)


def decode_result(data):
    """The output tensors of a result stream (one per record batch)."""
    schema, batches = arrowipc.read_stream(data)
    kinds = [str(f.type) for f in schema]
    if len(schema) != 2 or kinds[0] not in ("float32", "float64") or kinds[1] not in ("int32", "int64"):
        raise ServingError(f"a result has the columns data (float32) and shape (int32), this one {', '.join(f'{f.name} ({f.type})' for f in schema)}")
    out = []
    for b in batches:
        data = [v for v in b.columns[0] if v is not None]
        shape = [v for v in b.columns[1] if v is not None]
        try:
            out.append(Tensor(data, shape, kinds[0]))
        except ValueError as e:
            raise ServingError(f"a result tensor does not fit its shape: {e}") from None
    return out


# ---------------------------------------------------------------------------------------------
# The queue

class Queue:
    """Requests into, results out of a serve job's Redis stream.

    ``key`` (a RecordKey, its 32 bytes, or a key file path) seals requests and opens results;
    ``keys`` adds keys results may also be sealed under. Without a key, requests go in
    plaintext, which a serve job refuses unless its manifest allows it: pass
    ``plaintext=True`` to say that is meant.
    """

    def __init__(self, host="localhost", port=6379, *, stream=DEFAULT_STREAM, key=None, keys=(),
                 plaintext=False, redis=None, password=None, connect_timeout=10.0):
        self.stream = stream
        self.key = _as_key(key)
        self.keys = ([self.key] if self.key else []) + [_as_key(k) for k in keys]
        if self.key is None and not plaintext:
            raise ValueError("no record key: requests would cross Redis in plaintext; give key= "
                             "(the serve job's record key) or plaintext=True if the job allows plaintext")
        if redis is None:
            try:
                import redis as redis_mod
            except ImportError:
                raise ServingError("the Python Redis client is missing: install python3-redis (make deps does)") from None
            redis = redis_mod.Redis(host=host, port=int(port), password=password,
                                    socket_connect_timeout=connect_timeout, socket_timeout=30)
        self.redis = redis

    def enqueue(self, uri=None, /, **values):
        """Puts one request into the stream and returns its uri (a fresh UUID unless given)."""
        uri = str(uuid.uuid4()) if uri is None else str(uri)
        data = encode_request(**values)
        if self.key is not None:
            data = seal(self.key, REQUEST, self.stream, uri, data)
        self.redis.xadd(self.stream, {"uri": uri, "data": base64.b64encode(data).decode("ascii")})
        return uri

    def query(self, uri, delete=False):
        """The result of uri if it is there (else None); deletes it from Redis if asked."""
        key = result_key(self.stream, uri)
        v = self.redis.hget(key, "value")
        if v is None:
            return None
        if delete:
            self.redis.delete(key)
        v = v.decode("ascii", "replace") if isinstance(v, bytes) else v
        if v == NAN:
            raise ServingError(f"the serve job could not answer request {uri}: {self._reason(uri)}")
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(f"the result of {uri} is not base64") from None
        if raw[:4] == _MAGIC:
            if not self.keys:
                raise ServingError(f"the result of {uri} is a sealed record and this client has no record key")
            raw = open_record(self.keys, RESULT, self.stream, uri, raw)
        elif self.key is not None:
            raise RecordError(f"the result of {uri} is in plaintext where a sealed record was expected: refused")
        try:
            return decode_result(raw)
        except arrowipc.ArrowFormatError as e:
            raise ServingError(f"the result of {uri} is not a result stream: {e}") from None

    def result(self, uri, timeout=30.0, delete=True):
        """Waits for the result of uri and returns its tensors (deleting the hash unless
        delete=False). Raises ServingError when the job answered NaN (with the reason from
        its dead-letter stream), NoResultError after timeout seconds."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            r = self.query(uri, delete=delete)
            if r is not None:
                return r
            if time.monotonic() >= deadline:
                raise NoResultError(f"no result for {uri} within {timeout:g}s: is a serve job reading stream {self.stream!r} on this Redis?")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def predict(self, timeout=30.0, **values):
        """enqueue then result."""
        return self.result(self.enqueue(**values), timeout=timeout)

    def _reason(self, uri):
        """The dead-letter reason the job recorded for uri, if it is among the newest."""
        try:
            for _, fields in self.redis.xrevrange(self.stream + ":dead-letter", count=1000):
                f = {(k.decode() if isinstance(k, bytes) else k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                     for k, v in fields.items()}
                if f.get("uri") == uri:
                    return f.get("reason", "no reason recorded")
        except Exception:  # the reason is a courtesy; the NaN is the answer
            pass
        return f"see the stream {self.stream}:dead-letter"

    def close(self):
        self.redis.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
