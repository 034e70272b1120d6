"""JSON Canonicalization Scheme (RFC 8785) for the value set of job identities (docs/jobs.md,
"Canonical form"): null, booleans, strings, integers within ±(2^53-1), lists and objects
(members sorted by the UTF-16 code units of their names). Go: job.MarshalCanonical."""
import json

MAX_SAFE_INT = (1 << 53) - 1


def _sort_key(name):
    return name.encode("utf-16-be", "surrogatepass")  # big-endian code units sort as the code units do


def _string(s):
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}.get(c, f"\\u{o:04x}"))
        elif 0xD800 <= o <= 0xDFFF:
            raise ValueError("string is not valid UTF-8 (lone surrogate)")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _write(v, out):
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
            raise ValueError(f"integer {v} is outside the exactly representable range")
        out.append(str(int(v)))
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _write(e, out)
        out.append("]")
    elif isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise ValueError(f"object member name {k!r} is not a string")
        out.append("{")
        for i, k in enumerate(sorted(v, key=_sort_key)):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _write(v[k], out)
        out.append("}")
    else:
        raise ValueError(f"unsupported type {type(v).__name__} in canonical JSON")


def dumps(value):
    """The canonical bytes (UTF-8) of value."""
    out = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def loads(data):
    """Parse JSON for re-canonicalization: floats and non-finite numbers are refused."""
    def bad_float(s):
        raise ValueError(f"number {s} is not an integer")
    return json.loads(data, parse_float=bad_float, parse_constant=bad_float)
