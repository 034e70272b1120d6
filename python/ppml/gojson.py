"""Decoding JSON the way Go's encoding/json decodes it into a struct, and encoding strings the
way it encodes them, so that the audit verifier reaches the same verdicts as Go's on any input:
field names match exactly or case-insensitively (the last duplicate wins), null leaves a field
at its zero value, numbers must fit the field's type, and unknown fields are errors only in
strict mode."""
import json
import re


class GoJSONError(ValueError):
    pass


class _Int(int):
    """An integer literal, remembering whether it was written with a minus sign ("-0")."""

    neg = False


class _Float(str):
    """A number literal with a fraction or an exponent (never an integer for Go)."""


class _Obj(list):
    """A JSON object as its list of (name, value) pairs, in order, duplicates kept."""


def _parse_int(s):
    v = _Int(int(s))
    v.neg = s.startswith("-")
    return v


def _reject_constant(s):
    raise GoJSONError(f"invalid character in JSON: {s}")


_DECODER = json.JSONDecoder(object_pairs_hook=_Obj, parse_int=_parse_int, parse_float=_Float,
                            parse_constant=_reject_constant, strict=True)
_WS = re.compile(r"[ \t\n\r]*")


def loads(data, trailing_ok=False):
    """Parse one JSON value from bytes or str. With trailing_ok, bytes after the first value
    are ignored (Go's Decoder.Decode); otherwise only white space may follow (json.Unmarshal)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = bytes(data).decode("utf-8", "surrogateescape")
    else:
        text = data
    i = _WS.match(text).end()
    if i == len(text):
        raise GoJSONError("unexpected end of JSON input")
    try:
        value, end = _DECODER.raw_decode(text, i)
    except json.JSONDecodeError as e:
        raise GoJSONError(str(e)) from None
    if not trailing_ok and _WS.match(text, end).end() != len(text):
        raise GoJSONError("invalid character after top-level value")
    return value


_FOLD = {"\u212a": "k", "\u017f": "s"}  # the non-ASCII runes that fold to ASCII letters


def _fold(name):
    out = []
    for c in name:
        if c.isascii():
            out.append(c.lower())
        elif c in _FOLD:
            out.append(_FOLD[c])
        else:
            return None
    return "".join(out)


def fields(obj, names, strict=False):
    """Map an object's members to the struct field names they decode into (Go's rules).
    Returns {field: value}; raises GoJSONError for a non-object or, if strict, unknown names."""
    if obj is None:
        return {}
    if isinstance(obj, dict):  # a value parsed by the json module (no duplicates left)
        obj = _Obj(obj.items())
    if not isinstance(obj, _Obj):
        raise GoJSONError("cannot unmarshal a non-object into a struct")
    folded = {_fold(n): n for n in names}
    out = {}
    for k, v in obj:
        name = k if k in names else folded.get(_fold(k))
        if name is None:
            if strict:
                raise GoJSONError(f'json: unknown field "{k}"')
            continue
        out[name] = v
    return out


def as_uint(v, bits=64, what="number"):
    if v is None:
        return 0
    if isinstance(v, (bool, _Float)) or not isinstance(v, int) or getattr(v, "neg", v < 0) or v >= 1 << bits:
        raise GoJSONError(f"json: cannot unmarshal {_kind(v)} into {what} of type uint{bits}")
    return int(v)


def as_int(v, what="number"):
    if v is None:
        return 0
    if isinstance(v, (bool, _Float)) or not isinstance(v, int) or not -(1 << 63) <= v < 1 << 63:
        raise GoJSONError(f"json: cannot unmarshal {_kind(v)} into {what} of type int")
    return int(v)


_SURROGATE = re.compile("[\ud800-\udfff]")


def as_str(v, what="string"):
    """A JSON string as Go decodes it: each byte of invalid UTF-8 (kept by loads as a
    surrogateescape code point) and each lone surrogate escape (\\udXXX) becomes U+FFFD."""
    if v is None:
        return ""
    if not isinstance(v, str) or isinstance(v, _Float):
        raise GoJSONError(f"json: cannot unmarshal {_kind(v)} into {what} of type string")
    return _SURROGATE.sub("\ufffd", v)


def as_bool(v, what="bool"):
    if v is None:
        return False
    if not isinstance(v, bool):
        raise GoJSONError(f"json: cannot unmarshal {_kind(v)} into {what} of type bool")
    return v


_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def as_hex(v, what="hex"):
    """Go's audit.Hex / attest.Hex: a string of hex digits (either case); null is empty."""
    s = as_str(v, what)
    if not _HEX.fullmatch(s):
        raise GoJSONError(f"hex field: encoding/hex: invalid hex string {s[:40]!r}")
    return bytes.fromhex(s)


def hex_prefix(s):
    """What Go's hex.DecodeString returns along with an error: the bytes decoded before it."""
    out = bytearray()
    for i in range(0, len(s) - 1, 2):
        pair = s[i:i + 2]
        if not all(c in "0123456789abcdefABCDEF" for c in pair):
            break
        out.append(int(pair, 16))
    return bytes(out)


def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (_Int, _Float)):
        return "number " + str(v)
    if isinstance(v, str):
        return "string"
    if isinstance(v, _Obj):
        return "object"
    if isinstance(v, list):
        return "array"
    return "null"


def encode_string(s):
    """Go's encoding/json string encoding with SetEscapeHTML(false): only ", \\ and control
    characters are escaped (\\b \\f \\n \\r \\t short, others \\u00xx), plus U+2028 and U+2029."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\u{o:04x}"))
        elif o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            raise ValueError("string is not valid UTF-8")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


# -- RFC 3339 times, as Go's time.Time decodes and formats them ---------------------------------

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))")


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _days_in_month(y, m):
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def parse_time(s):
    """Parse an RFC 3339 time as Go's time.Time.UnmarshalJSON does; return (unix seconds,
    nanoseconds). Raises GoJSONError."""
    m = _RFC3339.fullmatch(s)
    if not m:
        raise GoJSONError(f'parsing time "{s}": not RFC 3339')
    y, mo, d, h, mi, sec = (int(x) for x in m.group(1, 2, 3, 4, 5, 6))
    if not 1 <= mo <= 12 or not 1 <= d <= _days_in_month(y, mo) or h > 23 or mi > 59 or sec > 59:
        raise GoJSONError(f'parsing time "{s}": out of range')
    frac = m.group(7) or ""
    ns = int((frac[:9]).ljust(9, "0")) if frac else 0
    t = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 24 or om > 59:
            raise GoJSONError(f'parsing time "{s}": time zone offset out of range')
        off = oh * 3600 + om * 60
        t -= off if m.group(9) == "+" else -off
    return t, ns


def format_time(t, ns):
    """Go's t.UTC().Format(time.RFC3339Nano)."""
    days, secs = divmod(t, 86400)
    y, mo, d = _civil_from_days(days)
    h, rem = divmod(secs, 3600)
    mi, sec = divmod(rem, 60)
    frac = f".{ns:09d}".rstrip("0") if ns else ""
    ys = f"{y:04d}" if y >= 0 else f"-{-y:04d}"
    return f"{ys}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{frac}Z"


def canonical_time(v, what="time"):
    """Decode a JSON time value and return its canonical (UTC, RFC3339Nano) text; null gives
    Go's zero time."""
    if v is None:
        return "0001-01-01T00:00:00Z"
    s = as_str(v, what)
    return format_time(*parse_time(s))
