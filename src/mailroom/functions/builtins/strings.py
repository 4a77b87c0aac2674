"""String and bytes functions (ksqlDB names and NULL behaviour)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import urllib.parse
import uuid as _uuid
from typing import Any

from mailroom.formats.types import SqlType

from ..registry import FunctionError, FunctionRegistry
from ._util import O, scalar

S, I, B, BY, BOOL, D = SqlType.STRING, SqlType.INT, SqlType.BIGINT, SqlType.BYTES, SqlType.BOOLEAN, SqlType.DOUBLE
CAT = "STRING"


def _substring(v: Any, pos: int, length: int | None = None) -> Any:
    n = len(v)
    start = max(n + pos, 0) if pos < 0 else max(pos - 1, 0)
    if length is None:
        return v[start:] if start < n else v[:0]
    end = max(min(start + length, n), start)
    return v[start:end]


def _split(v: Any, delim: Any) -> list:
    if len(delim) == 0:
        return [v[i : i + 1] for i in range(len(v))] or [v[:0]]
    return v.split(delim)


def _regex(p: str) -> re.Pattern:
    try:
        return re.compile(_java_regex(p))
    except re.error as e:
        raise FunctionError(f"invalid regular expression {p!r}: {e}") from None


def _java_regex(p: str) -> str:
    # Java named groups (?<name>...) -> Python (?P<name>...); possessive/atomic forms are rare
    return re.sub(r"\(\?<([A-Za-z][A-Za-z0-9]*)>", r"(?P<\1>", p)


def _java_replacement(r: str) -> str:
    out, i = [], 0
    while i < len(r):
        c = r[i]
        if c == "\\" and i + 1 < len(r):
            out.append(r[i + 1].replace("\\", "\\\\"))
            i += 2
            continue
        if c == "$" and i + 1 < len(r) and r[i + 1].isdigit():
            j = i + 1
            while j < len(r) and r[j].isdigit():
                j += 1
            out.append(f"\\g<{r[i + 1 : j]}>")
            i = j
            continue
        if c == "$" and r[i + 1 : i + 2] == "{":
            j = r.index("}", i)
            out.append(f"\\g<{r[i + 2 : j]}>")
            i = j + 1
            continue
        out.append("\\\\" if c == "\\" else c)
        i += 1
    return "".join(out)


def _regex_split(s: str, p: str) -> list[str]:
    rx = _regex(p)
    out, last = [], 0
    for m in rx.finditer(s):
        if m.end() == 0:
            continue
        if m.start() == m.end() and m.start() >= len(s):
            continue
        out.append(s[last : m.start()])
        last = m.end()
    out.append(s[last:])
    return out


def _pad(left: bool):
    def pad(v: Any, length: int, padding: Any) -> Any:
        if length < 0 or len(padding) == 0 and len(v) < length:
            return None
        if length <= len(v):
            return v[:length]
        need = length - len(v)
        reps = (padding * (need // len(padding) + 1))[:need]
        return reps + v if left else v + reps

    return pad


def _initcap(s: str) -> str:
    return " ".join(w[:1].upper() + w[1:].lower() for w in s.split(" "))


def _instr(s: str, sub: str, position: int = 1, occurrence: int = 1) -> int:
    if occurrence <= 0:
        return 0
    if position > 0:
        idx = position - 2
        for _ in range(occurrence):
            idx = s.find(sub, idx + 1)
            if idx < 0:
                return 0
        return idx + 1
    if position < 0:
        idx = len(s) + position + 1
        for _ in range(occurrence):
            idx = s.rfind(sub, 0, idx - 1 + len(sub)) if idx > 0 else -1
            if idx < 0:
                return 0
        return idx + 1
    return 0


_UESC = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")


def _chr_int(code: int) -> str | None:
    if 0 <= code <= 0x10FFFF:
        try:
            return chr(code)
        except ValueError:
            return None
    return None


def _chr_str(text: str) -> str | None:
    if not _UESC.fullmatch(text):
        return None
    units = [int(text[i + 2 : i + 6], 16) for i in range(0, len(text), 6)]
    raw = b"".join(u.to_bytes(2, "big") for u in units)
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError:
        return None


def _mask_char(c: str, upper: str | None, lower: str | None, digit: str | None, other: str | None) -> str:
    if c.isupper():
        return c if upper is None else upper
    if c.islower():
        return c if lower is None else lower
    if c.isdigit():
        return c if digit is None else digit
    return c if other is None else other


_MASK_DEFAULT = ("X", "x", "n", "-")


def _mask_fn(kind: str):
    def f(s: str | None, *args: Any) -> str | None:
        if s is None:
            return None
        if kind == "all":
            n, chars = None, args
        else:
            n, chars = args[0], args[1:]
            if n is None:
                return None
            if n < 0:
                raise FunctionError(f"function mask_{kind} requires a non-negative number of characters, got {n}")
        if chars:
            u, lo, d, o = (list(chars) + [None] * 4)[:4]
            u, lo, d, o = (x[:1] if x else None for x in (u, lo, d, o))
        else:
            u, lo, d, o = _MASK_DEFAULT
        m = lambda t: "".join(_mask_char(c, u, lo, d, o) for c in t)  # noqa: E731
        L = len(s)
        if kind == "all":
            return m(s)
        k = min(n, L)
        if kind == "left":
            return m(s[:k]) + s[k:]
        if kind == "right":
            return s[: L - k] + m(s[L - k :])
        if kind == "keep_left":
            return s[:k] + m(s[k:])
        return m(s[: L - k]) + s[L - k :]  # keep_right

    return f


_ENC = ("hex", "utf8", "ascii", "base64")


def _to_bytes(s: str, enc: str) -> bytes:
    e = enc.lower()
    if e == "hex":
        try:
            return binascii.unhexlify(s)
        except (binascii.Error, ValueError) as ex:
            raise FunctionError(f"invalid hex string {s!r}: {ex}") from None
    if e == "utf8":
        return s.encode("utf-8")
    if e == "ascii":
        return s.encode("ascii", errors="replace")
    if e == "base64":
        return base64.b64decode(s)
    raise FunctionError(f"Supported encoding types are: {', '.join(_ENC)} (got '{enc}')")


def _from_bytes(b: bytes, enc: str) -> str:
    e = enc.lower()
    if e == "hex":
        return b.hex().upper()
    if e == "utf8":
        return b.decode("utf-8", errors="replace")
    if e == "ascii":
        return b.decode("ascii", errors="replace")
    if e == "base64":
        return base64.b64encode(b).decode("ascii")
    raise FunctionError(f"Supported encoding types are: {', '.join(_ENC)} (got '{enc}')")


def _encode(s: str, in_enc: str, out_enc: str) -> str:
    return _from_bytes(_to_bytes(s, in_enc), out_enc)


def _num_from_bytes(fmt: str, size: int):
    def f(b: bytes, order: str = "BIG_ENDIAN") -> Any:
        if len(b) != size:
            raise FunctionError(f"Number of bytes must be equal to {size}, but found {len(b)}")
        o = order.upper()
        if o not in ("BIG_ENDIAN", "LITTLE_ENDIAN"):
            raise FunctionError(f"byte order must be BIG_ENDIAN or LITTLE_ENDIAN, got {order}")
        return struct.unpack((">" if o == "BIG_ENDIAN" else "<") + fmt, b)[0]

    return f


def _url_part(part: str):
    def f(url: str) -> Any:
        try:
            u = urllib.parse.urlsplit(url)
        except ValueError:
            return None
        if part == "protocol":
            return u.scheme or None
        if part == "host":
            return u.hostname
        if part == "port":
            try:
                return u.port
            except ValueError:
                return None
        if part == "path":
            return u.path or None
        if part == "query":
            return u.query or None
        if part == "fragment":
            return u.fragment or None
        return None

    return f


def _url_param(url: str, name: str) -> str | None:
    try:
        q = urllib.parse.urlsplit(url).query
    except ValueError:
        return None
    for k, v in urllib.parse.parse_qsl(q, keep_blank_values=True):
        if k == name:
            return v
    return None


def _split_to_map(s: str, entry: str, kv: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if not entry or not kv:
        raise FunctionError("split_to_map delimiters must not be empty")
    for part in s.split(entry):
        if not part:
            continue
        if kv in part:
            k, v = part.split(kv, 1)
            out[k] = v
    return out


def _concat(*args: Any) -> Any:
    vals = [a for a in args if a is not None]
    return vals[0][:0].join(vals) if vals else ""


def _concat_bytes(*args: Any) -> bytes:
    return b"".join(a for a in args if a is not None)


def _concat_ws(sep: Any, *args: Any) -> Any:
    if sep is None:
        return None
    return sep.join(a for a in args if a is not None)


def _elt(n: int | None, *args: Any) -> Any:
    if n is None or n < 1 or n > len(args):
        return None
    return args[n - 1]


def _field(s: Any, *args: Any) -> int:
    if s is None:
        return 0
    for i, a in enumerate(args):
        if a == s:
            return i + 1
    return 0


def _regexp_extract(p: str, s: str, group: int = 0) -> str | None:
    m = _regex(p).search(s)
    if not m or group > (m.re.groups):
        return None
    return m.group(group)


def _regexp_extract_all(p: str, s: str, group: int = 0) -> list:
    rx = _regex(p)
    return [m.group(group) for m in rx.finditer(s)] if group <= rx.groups else []


def register(reg: FunctionRegistry) -> None:
    sc = lambda name, *ovs, d="": scalar(reg, name, *ovs, description=d, category=CAT)  # noqa: E731
    sc("CONCAT", O([S], S, _concat, variadic=0, strict=False), O([BY], BY, _concat_bytes, variadic=0, strict=False),
       d="Concatenates strings or bytes; NULL arguments are skipped.")
    sc("CONCAT_WS", O([S, S], S, _concat_ws, variadic=1, strict=False), O([BY, BY], BY, _concat_ws, variadic=1, strict=False),
       d="Concatenates with a separator, skipping NULLs; NULL separator gives NULL.")
    sc("SUBSTRING", O([S, I], S, _substring), O([S, I, I], S, _substring), O([BY, I], BY, _substring), O([BY, I, I], BY, _substring),
       d="Substring from a 1-based position (negative counts from the end), optionally of a length.")
    sc("REPLACE", O([S, S, S], S, lambda s, a, b: s.replace(a, b)), d="Replaces every occurrence of a substring.")
    sc("REGEXP_EXTRACT", O([S, S], S, _regexp_extract), O([S, S, I], S, _regexp_extract),
       d="REGEXP_EXTRACT(pattern, string[, group]): the first match (or group).")
    sc("REGEXP_EXTRACT_ALL", O([S, S], "ARRAY<STRING>", _regexp_extract_all), O([S, S, I], "ARRAY<STRING>", _regexp_extract_all),
       d="All matches (or a group of each).")
    sc("REGEXP_REPLACE", O([S, S, S], S, lambda s, p, r: _regex(p).sub(_java_replacement(r), s)),
       d="REGEXP_REPLACE(string, pattern, replacement).")
    sc("REGEXP_SPLIT_TO_ARRAY", O([S, S], "ARRAY<STRING>", _regex_split), d="Splits by a regular expression.")
    sc("SPLIT", O([S, S], "ARRAY<STRING>", _split), O([BY, BY], "ARRAY<BYTES>", _split),
       d="Splits by a delimiter; an empty delimiter splits into characters.")
    sc("SPLIT_TO_MAP", O([S, S, S], "MAP<STRING, STRING>", _split_to_map),
       d="SPLIT_TO_MAP(string, entryDelimiter, kvDelimiter).")
    sc("LPAD", O([S, I, S], S, _pad(True)), O([BY, I, BY], BY, _pad(True)), d="Left-pads to a length.")
    sc("RPAD", O([S, I, S], S, _pad(False)), O([BY, I, BY], BY, _pad(False)), d="Right-pads to a length.")
    sc("TRIM", O([S], S, lambda s: s.strip(" \t\n\r\x0b\x0c\x00")), d="Removes leading and trailing whitespace.")
    sc("LTRIM", O([S], S, lambda s: s.lstrip(" \t\n\r\x0b\x0c\x00")), d="Removes leading whitespace.")
    sc("RTRIM", O([S], S, lambda s: s.rstrip(" \t\n\r\x0b\x0c\x00")), d="Removes trailing whitespace.")
    sc("UCASE", O([S], S, str.upper), d="Upper case.")
    sc("LCASE", O([S], S, str.lower), d="Lower case.")
    sc("INITCAP", O([S], S, _initcap), d="Capitalizes the first letter of each word.")
    sc("LEN", O([S], I, len), O([BY], I, len), d="Length in characters (or bytes).")
    sc("INSTR", O([S, S], I, _instr), O([S, S, I], I, _instr), O([S, S, I, I], I, _instr),
       d="INSTR(string, substring[, position[, occurrence]]): 1-based index, 0 if absent.")
    sc("CHR", O([I], S, _chr_int), O([S], S, _chr_str), d="The character of a code point (INT or '\\uXXXX' text).")
    sc("ELT", O([I, S], S, _elt, variadic=1, strict=False), d="ELT(n, s1, s2, ...): the n-th string (1-based).")
    sc("FIELD", O([S, S], I, _field, variadic=1, strict=False), d="FIELD(s, s1, s2, ...): 1-based position of s, 0 if absent.")
    for kind, fname in (("all", "MASK"), ("left", "MASK_LEFT"), ("right", "MASK_RIGHT"),
                        ("keep_left", "MASK_KEEP_LEFT"), ("keep_right", "MASK_KEEP_RIGHT")):
        f = _mask_fn(kind)
        lead = [S] if kind == "all" else [S, I]
        sc(fname, O(lead, S, f, strict=False), O(lead + [S, S, S, S], S, f, strict=False),
           d="Masks characters: upper->X, lower->x, digit->n, other->- (or the given replacements).")
    sc("ENCODE", O([S, S, S], S, _encode), d="ENCODE(string, inputEncoding, outputEncoding): hex, utf8, ascii, base64.")
    sc("TO_BYTES", O([S, S], BY, _to_bytes), d="TO_BYTES(string, encoding).")
    sc("FROM_BYTES", O([BY, S], S, _from_bytes), d="FROM_BYTES(bytes, encoding).")
    sc("INT_FROM_BYTES", O([BY], I, _num_from_bytes("i", 4)), O([BY, S], I, _num_from_bytes("i", 4)), d="4 bytes to INT.")
    sc("BIGINT_FROM_BYTES", O([BY], B, _num_from_bytes("q", 8)), O([BY, S], B, _num_from_bytes("q", 8)), d="8 bytes to BIGINT.")
    sc("DOUBLE_FROM_BYTES", O([BY], D, _num_from_bytes("d", 8)), O([BY, S], D, _num_from_bytes("d", 8)), d="8 bytes to DOUBLE.")
    sc("MD5", O([S], S, lambda s: hashlib.md5(s.encode("utf-8")).hexdigest()), d="Hex MD5 digest of the UTF-8 bytes.")
    sc("UUID", O([], S, lambda: str(_uuid.uuid4())), O([BY], S, lambda b: str(_uuid.UUID(bytes=b)) if len(b) == 16 else None),
       d="A random UUID, or the UUID of 16 bytes.")
    sc("URL_ENCODE_PARAM", O([S], S, lambda s: urllib.parse.quote_plus(s, safe="*")), d="URL-encodes a parameter value.")
    sc("URL_DECODE_PARAM", O([S], S, urllib.parse.unquote_plus), d="URL-decodes a parameter value.")
    for part in ("protocol", "host", "path", "query", "fragment"):
        sc(f"URL_EXTRACT_{part.upper()}", O([S], S, _url_part(part)), d=f"The {part} of a URL.")
    sc("URL_EXTRACT_PORT", O([S], I, _url_part("port")), d="The port of a URL.")
    sc("URL_EXTRACT_PARAMETER", O([S, S], S, _url_param), d="The value of a query parameter of a URL.")
