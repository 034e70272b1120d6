"""A small Arrow IPC stream writer and reader in pure Python (no pyarrow).

Cluster Serving's queue carries Arrow IPC streams: a request is one RecordBatch whose columns
are the values (ndarrays as a struct of lists), a result one RecordBatch per output tensor.
Debian 12 packages no pyarrow, so ``ppml.serving`` writes and reads these streams with this
module. It covers the part of the Arrow columnar format and IPC protocol the queue uses, and
refuses the rest with ``ArrowFormatError`` naming what it met:

- types: signed and unsigned integers of 8 to 64 bits, float16/32/64, bool, utf8, binary
  (and their ``large`` 64-bit-offset variants), list, large list and struct;
- the stream framing (continuation marker, 8-byte aligned metadata and bodies, the
  end-of-stream marker; the pre-1.0 framing without a continuation marker is read too),
  a Schema message and RecordBatch messages, metadata version V4/V5, little-endian;
- not: dictionaries, compression, unions, maps, temporal and decimal types, views.

Values are plain Python: a column is a list with ``None`` for nulls; a list value is a
Python list, a struct value a dict (a key missing from a dict written is a null child).

The metadata is FlatBuffers (the Arrow project's Schema.fbs and Message.fbs); this module
builds and reads those tables by hand with ``struct``. Every offset and length read is
checked against the bytes there are, so malformed input raises ``ArrowFormatError`` and
never makes the reader allocate more than the input's size warrants.
"""
import struct as _struct
from dataclasses import dataclass, field as _dcfield

from .errors import PPMLError

__all__ = [
    "ArrowFormatError", "DataType", "Field", "RecordBatch",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "bool_", "utf8", "binary", "large_utf8", "large_binary",
    "list_", "large_list", "struct",
    "write_stream", "read_stream",
]


class ArrowFormatError(PPMLError):
    """Bytes that are not an Arrow IPC stream this module reads, or values that do not fit
    the schema they are written with."""

    kind = "arrow_format"


# Type ids of Schema.fbs's `union Type`.
_T_INT, _T_FLOAT, _T_BINARY, _T_UTF8, _T_BOOL = 2, 3, 4, 5, 6
_T_LIST, _T_STRUCT = 12, 13
_T_LARGE_BINARY, _T_LARGE_UTF8, _T_LARGE_LIST = 19, 20, 21
_TYPE_NAMES = {0: "NONE", 1: "Null", 2: "Int", 3: "FloatingPoint", 4: "Binary", 5: "Utf8", 6: "Bool",
               7: "Decimal", 8: "Date", 9: "Time", 10: "Timestamp", 11: "Interval", 12: "List",
               13: "Struct", 14: "Union", 15: "FixedSizeBinary", 16: "FixedSizeList", 17: "Map",
               18: "Duration", 19: "LargeBinary", 20: "LargeUtf8", 21: "LargeList",
               22: "RunEndEncoded", 23: "BinaryView", 24: "Utf8View", 25: "ListView", 26: "LargeListView"}
# Message.fbs's `union MessageHeader`.
_H_SCHEMA, _H_DICTIONARY, _H_BATCH = 1, 2, 3
_METADATA_V5 = 4
_CONTINUATION = 0xFFFFFFFF

# Reading bounds: a Cluster Serving record has a handful of columns and a nesting depth of
# three; the Go side enforces the same kind of limits (serve/clusterserving/arrowbounds.go).
MAX_FIELDS = 1024
MAX_DEPTH = 16
MAX_MESSAGES = 1 << 16


@dataclass(frozen=True)
class DataType:
    """An Arrow data type: ``kind`` is int, float, bool, utf8, binary, list or struct."""

    kind: str
    bits: int = 0          # int and float: the width; utf8, binary, list: 32 or 64 (offsets)
    signed: bool = True    # int only
    children: tuple = ()   # list: (item Field,); struct: its Fields

    def __str__(self):
        if self.kind == "int":
            return f"{'' if self.signed else 'u'}int{self.bits}"
        if self.kind == "float":
            return f"float{self.bits}"
        if self.kind in ("utf8", "binary"):
            return self.kind if self.bits == 32 else "large_" + self.kind
        if self.kind == "list":
            return f"{'list' if self.bits == 32 else 'large_list'}<{self.children[0].type}>"
        if self.kind == "struct":
            return "struct<" + ", ".join(f"{f.name}: {f.type}" for f in self.children) + ">"
        return self.kind


@dataclass(frozen=True)
class Field:
    """A named, typed column (or a list's item, a struct's member)."""

    name: str
    type: DataType
    nullable: bool = True


@dataclass
class RecordBatch:
    """Rows of a schema: ``columns[i]`` holds ``num_rows`` values of ``schema[i]``."""

    schema: list
    columns: list
    num_rows: int = _dcfield(default=0)

    def column(self, name):
        for f, c in zip(self.schema, self.columns):
            if f.name == name:
                return c
        raise KeyError(name)


def int8(): return DataType("int", 8, True)
def int16(): return DataType("int", 16, True)
def int32(): return DataType("int", 32, True)
def int64(): return DataType("int", 64, True)
def uint8(): return DataType("int", 8, False)
def uint16(): return DataType("int", 16, False)
def uint32(): return DataType("int", 32, False)
def uint64(): return DataType("int", 64, False)
def float16(): return DataType("float", 16)
def float32(): return DataType("float", 32)
def float64(): return DataType("float", 64)
def bool_(): return DataType("bool")
def utf8(): return DataType("utf8", 32)
def binary(): return DataType("binary", 32)
def large_utf8(): return DataType("utf8", 64)
def large_binary(): return DataType("binary", 64)
def list_(item): return DataType("list", 32, children=(Field("item", item),))
def large_list(item): return DataType("list", 64, children=(Field("item", item),))
def struct(fields): return DataType("struct", children=tuple(fields))


_INT_FMT = {(8, True): "b", (16, True): "h", (32, True): "i", (64, True): "q",
            (8, False): "B", (16, False): "H", (32, False): "I", (64, False): "Q"}
_FLOAT_FMT = {16: "e", 32: "f", 64: "d"}


def _pad8(n):
    return (8 - n % 8) % 8


# ---------------------------------------------------------------------------------------------
# FlatBuffers, written front to back: a table's vtable goes right before it, and everything a
# table, vector or string refers to is laid out after it, so every uoffset is positive, as
# the format requires.

class _Table:
    """A table to write: ``fields`` are (slot, fmt, value) with fmt a struct code, or
    (slot, "o", object) for an offset to a table, vector or string."""

    def __init__(self, *fields):
        self.fields = [f for f in fields if f is not None]


class _Str:
    def __init__(self, b):
        self.b = b


class _TableVec:
    def __init__(self, items):
        self.items = list(items)


class _StructVec:
    """A vector of 8-byte-aligned structs (FieldNode, Buffer: two int64s each)."""

    def __init__(self, pairs):
        self.pairs = list(pairs)


_SIZE = {"B": 1, "?": 1, "h": 2, "i": 4, "q": 8, "o": 4}


def _build(root):
    buf = bytearray(4)  # the root uoffset
    todo = [(0, root)]
    while todo:
        at, obj = todo.pop(0)
        pos = _emit(buf, obj, todo)
        _struct.pack_into("<I", buf, at, pos - at)
    buf.extend(b"\0" * _pad8(len(buf)))
    return bytes(buf)


def _align(buf, n, rem=0):
    while len(buf) % n != rem:
        buf.append(0)


def _emit(buf, obj, todo):
    if isinstance(obj, _Str):
        _align(buf, 4)
        pos = len(buf)
        buf += _struct.pack("<I", len(obj.b)) + obj.b + b"\0"
        return pos
    if isinstance(obj, _TableVec):
        _align(buf, 4)
        pos = len(buf)
        buf += _struct.pack("<I", len(obj.items)) + b"\0" * (4 * len(obj.items))
        for i, t in enumerate(obj.items):
            todo.append((pos + 4 + 4 * i, t))
        return pos
    if isinstance(obj, _StructVec):
        _align(buf, 8, 4)  # the elements start 8-byte aligned, after the 4-byte length
        pos = len(buf)
        buf += _struct.pack("<I", len(obj.pairs))
        for a, b in obj.pairs:
            buf += _struct.pack("<qq", a, b)
        return pos
    # A table: inline fields by decreasing size after the 4-byte vtable offset.
    fields = sorted(obj.fields, key=lambda f: -_SIZE[f[1]])
    offsets, cursor = {}, 4
    for slot, fmt, _ in fields:
        size = _SIZE[fmt]
        cursor += (size - cursor % size) % size
        offsets[slot] = cursor
        cursor += size
    nslots = max((f[0] for f in fields), default=-1) + 1
    _align(buf, 2)
    vt = len(buf)
    buf += _struct.pack("<HH", 4 + 2 * nslots, cursor)
    for s in range(nslots):
        buf += _struct.pack("<H", offsets.get(s, 0))
    _align(buf, 8)
    pos = len(buf)
    buf += b"\0" * cursor
    _struct.pack_into("<i", buf, pos, pos - vt)
    for slot, fmt, value in fields:
        if fmt == "o":
            todo.append((pos + offsets[slot], value))
        else:
            _struct.pack_into("<" + fmt, buf, pos + offsets[slot], value)
    return pos


def _type_table(t):
    """(type id, type table) for a DataType."""
    if t.kind == "int":
        return _T_INT, _Table((0, "i", t.bits), (1, "?", t.signed))
    if t.kind == "float":
        return _T_FLOAT, _Table((0, "h", {16: 0, 32: 1, 64: 2}[t.bits]))
    if t.kind == "bool":
        return _T_BOOL, _Table()
    if t.kind == "utf8":
        return (_T_UTF8 if t.bits == 32 else _T_LARGE_UTF8), _Table()
    if t.kind == "binary":
        return (_T_BINARY if t.bits == 32 else _T_LARGE_BINARY), _Table()
    if t.kind == "list":
        return (_T_LIST if t.bits == 32 else _T_LARGE_LIST), _Table()
    if t.kind == "struct":
        return _T_STRUCT, _Table()
    raise ArrowFormatError(f"cannot write Arrow type {t}")


def _field_table(f):
    tid, tt = _type_table(f.type)
    return _Table((0, "o", _Str(f.name.encode("utf-8"))), (1, "?", f.nullable), (2, "B", tid), (3, "o", tt),
                  (5, "o", _TableVec(_field_table(c) for c in f.type.children)))


def _message(header_type, header, body_len):
    return _build(_Table((0, "h", _METADATA_V5), (1, "B", header_type), (2, "o", header), (3, "q", body_len)))


def _frame(meta, body=b""):
    return _struct.pack("<Ii", _CONTINUATION, len(meta)) + meta + body


# ---------------------------------------------------------------------------------------------
# Writing columns: each array adds its FieldNode and buffers in depth-first order (Arrow's
# IPC "buffer layout"); buffers are 8-byte aligned in the body.

class _Body:
    def __init__(self):
        self.nodes, self.buffers, self.data = [], [], bytearray()

    def add(self, b):
        self.buffers.append((len(self.data), len(b)))
        self.data += b
        self.data += b"\0" * _pad8(len(b))


def _bitmap(bits):
    out = bytearray((len(bits) + 7) // 8)
    for i, v in enumerate(bits):
        if v:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _write_array(body, f, values, where):
    t = f.type
    n = len(values)
    valid = [v is not None for v in values]
    nulls = n - sum(valid)
    if nulls and not f.nullable:
        raise ArrowFormatError(f"{where}: null in a non-nullable field")
    body.nodes.append((n, nulls))
    body.add(_bitmap(valid) if nulls else b"")
    try:
        if t.kind == "int":
            body.add(_struct.pack(f"<{n}{_INT_FMT[(t.bits, t.signed)]}", *(0 if v is None else v for v in values)))
        elif t.kind == "float":
            body.add(_struct.pack(f"<{n}{_FLOAT_FMT[t.bits]}", *(0.0 if v is None else v for v in values)))
        elif t.kind == "bool":
            body.add(_bitmap([bool(v) for v in values]))
        elif t.kind in ("utf8", "binary"):
            parts = [b"" if v is None else (v.encode("utf-8") if t.kind == "utf8" else bytes(v)) for v in values]
            offs = [0]
            for p in parts:
                offs.append(offs[-1] + len(p))
            body.add(_struct.pack(f"<{n + 1}{'i' if t.bits == 32 else 'q'}", *offs))
            body.add(b"".join(parts))
        elif t.kind == "list":
            offs, items = [0], []
            for v in values:
                if v is not None:
                    items.extend(v)
                offs.append(len(items))
            body.add(_struct.pack(f"<{n + 1}{'i' if t.bits == 32 else 'q'}", *offs))
            _write_array(body, t.children[0], items, f"{where}[]")
        elif t.kind == "struct":
            for c in t.children:
                _write_array(body, c, [None if v is None else v.get(c.name) for v in values], f"{where}.{c.name}")
        else:
            raise ArrowFormatError(f"{where}: cannot write Arrow type {t}")
    except (_struct.error, TypeError, AttributeError, UnicodeEncodeError) as e:
        raise ArrowFormatError(f"{where}: values do not fit {t}: {e}") from None


def write_stream(schema, batches):
    """An Arrow IPC stream: the schema (a list of Fields), each batch (a list of columns,
    one list of values per field, all of one length), and the end-of-stream marker."""
    schema = list(schema)
    out = [_frame(_message(_H_SCHEMA, _Table((0, "h", 0), (1, "o", _TableVec(_field_table(f) for f in schema))), 0))]
    for columns in batches:
        if len(columns) != len(schema):
            raise ArrowFormatError(f"a batch has {len(columns)} columns for a schema of {len(schema)} fields")
        rows = {len(c) for c in columns}
        if len(rows) > 1:
            raise ArrowFormatError(f"a batch's columns have different lengths: {sorted(rows)}")
        n = rows.pop() if rows else 0
        body = _Body()
        for f, col in zip(schema, columns):
            _write_array(body, f, list(col), f"column {f.name!r}")
        batch = _Table((0, "q", n), (1, "o", _StructVec(body.nodes)), (2, "o", _StructVec(body.buffers)))
        out.append(_frame(_message(_H_BATCH, batch, len(body.data)), bytes(body.data)))
    out.append(_struct.pack("<Ii", _CONTINUATION, 0))
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
# Reading FlatBuffers with every access bounds-checked.

class _FBTable:
    __slots__ = ("buf", "pos", "vt", "vtlen", "tlen")

    def __init__(self, buf, pos):
        self.buf = buf
        if pos < 0 or pos + 4 > len(buf):
            raise ArrowFormatError("malformed message metadata (table outside the buffer)")
        self.pos = pos
        vt = pos - _struct.unpack_from("<i", buf, pos)[0]
        if vt < 0 or vt + 4 > len(buf):
            raise ArrowFormatError("malformed message metadata (vtable outside the buffer)")
        self.vtlen, self.tlen = _struct.unpack_from("<HH", buf, vt)
        if self.vtlen < 4 or self.vtlen % 2 or vt + self.vtlen > len(buf) or self.tlen < 4 or pos + self.tlen > len(buf):
            raise ArrowFormatError("malformed message metadata (vtable)")
        self.vt = vt

    def _off(self, slot, size):
        o = 4 + 2 * slot
        if o + 2 > self.vtlen:
            return 0
        off = _struct.unpack_from("<H", self.buf, self.vt + o)[0]
        if off and off + size > self.tlen:
            raise ArrowFormatError("malformed message metadata (field outside its table)")
        return off

    def scalar(self, slot, fmt, default=0):
        off = self._off(slot, _struct.calcsize("<" + fmt))
        return _struct.unpack_from("<" + fmt, self.buf, self.pos + off)[0] if off else default

    def _deref(self, slot):
        off = self._off(slot, 4)
        if not off:
            return None
        at = self.pos + off
        return at + _struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot):
        p = self._deref(slot)
        return None if p is None else _FBTable(self.buf, p)

    def _vector(self, slot, elem):
        p = self._deref(slot)
        if p is None:
            return None, 0
        if p + 4 > len(self.buf):
            raise ArrowFormatError("malformed message metadata (vector outside the buffer)")
        n = _struct.unpack_from("<I", self.buf, p)[0]
        if p + 4 + n * elem > len(self.buf):
            raise ArrowFormatError(f"message metadata declares {n} entries in {len(self.buf)} bytes")
        return p + 4, n

    def string(self, slot):
        start, n = self._vector(slot, 1)
        if start is None:
            return None
        try:
            return bytes(self.buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise ArrowFormatError("a name in the metadata is not UTF-8") from None

    def tables(self, slot):
        start, n = self._vector(slot, 4)
        out = []
        for i in range(n):
            at = start + 4 * i
            out.append(_FBTable(self.buf, at + _struct.unpack_from("<I", self.buf, at)[0]))
        return out

    def pairs(self, slot):
        start, n = self._vector(slot, 16)
        return [_struct.unpack_from("<qq", self.buf, start + 16 * i) for i in range(n)]

    def count(self, slot, elem):
        return self._vector(slot, elem)[1]


def _read_field(t, depth, total):
    if depth > MAX_DEPTH:
        raise ArrowFormatError(f"fields nested more than {MAX_DEPTH} deep")
    total[0] += 1
    if total[0] > MAX_FIELDS:
        raise ArrowFormatError(f"more than {MAX_FIELDS} fields")
    name = t.string(0) or ""
    nullable = bool(t.scalar(1, "B"))
    tid = t.scalar(2, "B")
    tt = t.table(3)
    if t.table(4) is not None:
        raise ArrowFormatError(f"field {name!r} is dictionary-encoded, which this reader does not support")
    children = [_read_field(c, depth + 1, total) for c in t.tables(5)]
    where = f"field {name!r}"
    if tid == _T_INT:
        if tt is None:
            raise ArrowFormatError(f"{where}: Int type without its table")
        bits, signed = tt.scalar(0, "i"), bool(tt.scalar(1, "B"))
        if bits not in (8, 16, 32, 64):
            raise ArrowFormatError(f"{where}: integers of {bits} bits")
        dt = DataType("int", bits, signed)
    elif tid == _T_FLOAT:
        prec = tt.scalar(0, "h") if tt is not None else 0
        if prec not in (0, 1, 2):
            raise ArrowFormatError(f"{where}: floating point precision {prec}")
        dt = DataType("float", (16, 32, 64)[prec])
    elif tid == _T_BOOL:
        dt = bool_()
    elif tid in (_T_UTF8, _T_LARGE_UTF8):
        dt = DataType("utf8", 32 if tid == _T_UTF8 else 64)
    elif tid in (_T_BINARY, _T_LARGE_BINARY):
        dt = DataType("binary", 32 if tid == _T_BINARY else 64)
    elif tid in (_T_LIST, _T_LARGE_LIST):
        if len(children) != 1:
            raise ArrowFormatError(f"{where}: a list with {len(children)} child fields")
        dt = DataType("list", 32 if tid == _T_LIST else 64, children=tuple(children))
    elif tid == _T_STRUCT:
        dt = DataType("struct", children=tuple(children))
    else:
        raise ArrowFormatError(f"{where} has Arrow type {_TYPE_NAMES.get(tid, tid)}, which this reader does not support")
    if dt.kind not in ("list", "struct") and children:
        raise ArrowFormatError(f"{where}: a {dt} with child fields")
    return Field(name, dt, nullable)


class _BatchReader:
    def __init__(self, nodes, buffers, body):
        self.nodes, self.buffers, self.body = nodes, buffers, body
        self.ni = self.bi = 0

    def node(self, where):
        if self.ni >= len(self.nodes):
            raise ArrowFormatError(f"{where}: the record batch has fewer field nodes than the schema has fields")
        n, nulls = self.nodes[self.ni]
        self.ni += 1
        if n < 0 or nulls < 0 or nulls > n or n > 8 * len(self.body) + 64:
            raise ArrowFormatError(f"{where}: field node declares {n} values, {nulls} null")
        return n, nulls

    def buffer(self, where):
        if self.bi >= len(self.buffers):
            raise ArrowFormatError(f"{where}: the record batch has fewer buffers than its fields need")
        off, ln = self.buffers[self.bi]
        self.bi += 1
        if off < 0 or ln < 0 or off + ln > len(self.body):
            raise ArrowFormatError(f"{where}: buffer at {off}+{ln} outside the {len(self.body)}-byte body")
        return memoryview(self.body)[off:off + ln]

    def array(self, f, where):
        t = f.type
        n, nulls = self.node(where)
        vbuf = self.buffer(where)
        if nulls:
            if len(vbuf) < (n + 7) // 8:
                raise ArrowFormatError(f"{where}: validity bitmap of {len(vbuf)} bytes for {n} values")
            valid = [bool(vbuf[i >> 3] >> (i & 7) & 1) for i in range(n)]
            if n - sum(valid) != nulls:
                raise ArrowFormatError(f"{where}: null count {nulls} does not match the validity bitmap")
        else:
            valid = None
        if t.kind in ("int", "float"):
            fmt = _INT_FMT[(t.bits, t.signed)] if t.kind == "int" else _FLOAT_FMT[t.bits]
            data = self.buffer(where)
            if len(data) < n * t.bits // 8:
                raise ArrowFormatError(f"{where}: {len(data)} bytes of values for {n} {t}")
            vals = list(_struct.unpack_from(f"<{n}{fmt}", data)) if n else []
        elif t.kind == "bool":
            data = self.buffer(where)
            if len(data) < (n + 7) // 8:
                raise ArrowFormatError(f"{where}: {len(data)} bytes of values for {n} bools")
            vals = [bool(data[i >> 3] >> (i & 7) & 1) for i in range(n)]
        elif t.kind in ("utf8", "binary", "list"):
            offs = self.offsets(t, n, where)
            if t.kind == "list":
                items = self.array(t.children[0], where + "[]")
                if offs[-1] > len(items):
                    raise ArrowFormatError(f"{where}: offsets reach {offs[-1]}, the list's values are {len(items)}")
                vals = [items[offs[i]:offs[i + 1]] for i in range(n)]
            else:
                data = self.buffer(where)
                if offs[-1] > len(data):
                    raise ArrowFormatError(f"{where}: offsets reach {offs[-1]} in {len(data)} bytes of data")
                vals = [bytes(data[offs[i]:offs[i + 1]]) for i in range(n)]
                if t.kind == "utf8":
                    try:
                        vals = [v.decode("utf-8") for v in vals]
                    except UnicodeDecodeError:
                        raise ArrowFormatError(f"{where}: a string is not UTF-8") from None
        elif t.kind == "struct":
            cols = []
            for c in t.children:
                col = self.array(c, f"{where}.{c.name}")
                if len(col) < n:
                    raise ArrowFormatError(f"{where}.{c.name}: {len(col)} values for a struct of {n}")
                cols.append(col)
            vals = [{c.name: col[i] for c, col in zip(t.children, cols)} for i in range(n)]
        else:  # _read_field admits no other kind
            raise ArrowFormatError(f"{where}: cannot read Arrow type {t}")
        if valid is not None:
            vals = [v if ok else None for v, ok in zip(vals, valid)]
        if not f.nullable and valid is not None:
            raise ArrowFormatError(f"{where}: nulls in a non-nullable field")
        return vals

    def offsets(self, t, n, where):
        width = 4 if t.bits == 32 else 8
        data = self.buffer(where)
        if n == 0 and len(data) == 0:
            return [0]
        if len(data) < (n + 1) * width:
            raise ArrowFormatError(f"{where}: {len(data)} bytes of offsets for {n} values")
        offs = _struct.unpack_from(f"<{n + 1}{'i' if width == 4 else 'q'}", data)
        if offs[0] < 0 or any(offs[i] > offs[i + 1] for i in range(n)):
            raise ArrowFormatError(f"{where}: offsets are not non-decreasing from 0")
        return offs


def read_stream(data):
    """The schema (list of Fields) and RecordBatches of an Arrow IPC stream."""
    data = bytes(data)
    pos, schema, batches = 0, None, []
    for _ in range(MAX_MESSAGES):
        if pos == len(data):
            break  # a stream may end without the end-of-stream marker
        if pos + 4 > len(data):
            raise ArrowFormatError("truncated message length")
        size = _struct.unpack_from("<I", data, pos)[0]
        pos += 4
        if size == _CONTINUATION:
            if pos + 4 > len(data):
                raise ArrowFormatError("truncated message length")
            size = _struct.unpack_from("<I", data, pos)[0]
            pos += 4
        if size == 0:
            break
        if size < 8 or size > len(data) - pos:
            raise ArrowFormatError(f"message metadata of {size} bytes where {len(data) - pos} remain")
        meta = data[pos:pos + size]
        pos += size
        msg = _FBTable(meta, _struct.unpack_from("<I", meta, 0)[0])
        version = msg.scalar(0, "h")
        if version < 3:
            raise ArrowFormatError(f"Arrow metadata version V{version + 1}; this reader reads V4 and V5")
        htype = msg.scalar(1, "B")
        header = msg.table(2)
        body_len = msg.scalar(3, "q")
        if body_len < 0 or body_len > len(data) - pos:
            raise ArrowFormatError(f"message body of {body_len} bytes where {len(data) - pos} remain")
        body = data[pos:pos + body_len]
        pos += body_len
        if header is None:
            raise ArrowFormatError("a message without its header")
        if htype == _H_SCHEMA:
            if schema is not None:
                raise ArrowFormatError("a second schema message")
            if header.scalar(0, "h") != 0:
                raise ArrowFormatError("a big-endian stream; this reader reads little-endian")
            total = [0]
            schema = [_read_field(f, 0, total) for f in header.tables(1)]
        elif htype == _H_BATCH:
            if schema is None:
                raise ArrowFormatError("a record batch before the schema")
            if header.table(3) is not None:
                raise ArrowFormatError("compressed record batch buffers, which this reader does not support")
            if header.count(4, 8):
                raise ArrowFormatError("variadic buffers (view types), which this reader does not support")
            n = header.scalar(0, "q")
            if n < 0 or n > 8 * len(body) + 64:
                raise ArrowFormatError(f"record batch declares {n} rows in a {len(body)}-byte body")
            rd = _BatchReader(header.pairs(1), header.pairs(2), body)
            cols = []
            for f in schema:
                col = rd.array(f, f"column {f.name!r}")
                if len(col) != n:
                    raise ArrowFormatError(f"column {f.name!r} has {len(col)} values in a batch of {n} rows")
                cols.append(col)
            batches.append(RecordBatch(schema, cols, n))
        elif htype == _H_DICTIONARY:
            raise ArrowFormatError("a dictionary batch; this reader does not support dictionary encoding")
        else:
            raise ArrowFormatError(f"a message of header type {htype}, which an IPC stream does not carry")
    else:
        raise ArrowFormatError(f"more than {MAX_MESSAGES} messages")
    if schema is None:
        raise ArrowFormatError("not an Arrow IPC stream: no schema message")
    if pos != len(data):
        raise ArrowFormatError(f"{len(data) - pos} bytes after the end of the stream")
    return schema, batches
