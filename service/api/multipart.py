"""Split a buffered ``multipart/form-data`` body into its parts (RFC 7578, RFC 2046 delimiters).

The body is already bounded by ``MAX_CONTENT_LENGTH`` and read whole, so finding delimiters
with ``bytes.find`` over it costs a fraction of Werkzeug's streaming parser, which on small
PNGs spends more per part than ONNX Runtime spends per image. Parts are counted from 0 in
messages, as images are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.http import parse_options_header

from service.errors import BadRequest, PayloadTooLarge

MAX_PARTS = 1000
"""Most parts in one body unless the caller says otherwise (Werkzeug's default too)."""

_CHARSETS = frozenset({"ascii", "us-ascii", "utf-8", "iso-8859-1"})
"""The field charsets honoured, the same safe list as Werkzeug's."""

# The shape browsers, requests and urllib3 send. Without backslashes or percent signs in the
# quoted values, parse_options_header would return exactly these groups; anything else
# (tokens, escapes, RFC 2231 ``filename*``, other parameters) takes the general path.
_PLAIN_DISPOSITION = re.compile(r'form-data; name="([^"\\%]*)"(?:; filename="([^"\\%]*)")?')


@dataclass(frozen=True)
class Part:
    """One body part: a file when it has a filename (even an empty one), else a field."""

    index: int
    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def is_file(self) -> bool:
        """Whether the part carries a filename, as Werkzeug tells files from fields."""
        return self.filename is not None

    def text(self) -> str:
        """Decode the part by its charset (UTF-8 unless it names another safe one)."""
        charset = "utf-8"
        if self.content_type:
            named = parse_options_header(self.content_type)[1].get("charset", "").lower()
            if named in _CHARSETS:
                charset = named
        try:
            return self.data.decode(charset)
        except UnicodeDecodeError as exc:
            raise BadRequest(
                f"part {self.index} (field {self.name!r}) is not valid {charset} "
                f"at byte {exc.start}",
                part=self.index,
            ) from None


def parse_form(
    body: bytes,
    boundary: str | None,
    *,
    max_parts: int | None = MAX_PARTS,
    max_field_bytes: int | None = None,
) -> list[Part]:
    """Every part of ``body`` in order; a malformed body raises one error saying where."""
    if not boundary:
        raise BadRequest("the multipart/form-data content type has no boundary parameter")
    try:
        dash = b"--" + boundary.encode("latin-1")
    except UnicodeEncodeError:
        raise BadRequest(f"the multipart boundary {boundary!r} is not Latin-1") from None

    nl, pos = _first_delimiter(body, dash, boundary)
    if nl is None:
        return []  # the first delimiter is the close delimiter: an empty form
    delimiter = nl + dash
    blank = nl + nl
    parts: list[Part] = []
    while True:
        index = len(parts)
        if max_parts is not None and index >= max_parts:
            raise PayloadTooLarge(f"the multipart body has over {max_parts} parts")
        # Search from the delimiter line's own line break, so a part without headers is found.
        head_end = body.find(blank, pos - len(nl))
        if head_end < 0 or body.find(delimiter, pos - len(nl), head_end) >= 0:
            raise BadRequest(f"part {index} has no blank line ending its headers", part=index)
        data_start = head_end + len(blank)
        # The blank line's second break may double as the next delimiter's: an empty part.
        found = _next_delimiter(body, delimiter, head_end + len(nl), nl)
        if found is None:
            raise BadRequest(
                f"part {index} is not followed by a delimiter; "
                f"the multipart body has no close delimiter '--{boundary}--'",
                part=index,
            )
        at, nxt = found
        parts.append(_part(index, body[pos:head_end], body[data_start:at], nl, max_field_bytes))
        if nxt is None:
            return parts
        pos = nxt


def _first_delimiter(body: bytes, dash: bytes, boundary: str) -> tuple[bytes | None, int]:
    """The body's line break and where the first delimiter line ends.

    The line break is ``None`` when the first delimiter is the close delimiter. The first
    delimiter opens the body or follows a line break in the preamble; the break after it
    (CRLF, or LF as Werkzeug also accepts) is the one every later delimiter must use.
    """
    at = 0 if body.startswith(dash) else _next_line_start(body, dash, 0, boundary)
    while True:
        after = at + len(dash)
        if body.startswith(b"--", after):
            return None, after + 2
        padded = _skip_padding(body, after)
        if body.startswith(b"\r\n", padded):
            return b"\r\n", padded + 2
        if body.startswith(b"\n", padded):
            return b"\n", padded + 1
        if padded == len(body):
            raise BadRequest(
                "the multipart body ends after its first delimiter; "
                f"it has no close delimiter '--{boundary}--'"
            )
        at = _next_line_start(body, dash, at, boundary)  # boundary-like text in the preamble


def _next_line_start(body: bytes, dash: bytes, search: int, boundary: str) -> int:
    found = body.find(b"\n" + dash, search)
    if found < 0:
        raise BadRequest(f"the multipart body has no delimiter line '--{boundary}'")
    return found + 1


def _next_delimiter(
    body: bytes, delimiter: bytes, search: int, nl: bytes
) -> tuple[int, int | None] | None:
    """Where the next delimiter starts and its line ends (``None`` for the close delimiter)."""
    while (at := body.find(delimiter, search)) >= 0:
        after = at + len(delimiter)
        if body.startswith(b"--", after):
            return at, None
        line_end = _line_break_end(body, after, nl)
        if line_end is not None:
            return at, line_end
        search = at + 1  # boundary-like bytes inside the data, not a delimiter line
    return None


def _line_break_end(body: bytes, pos: int, nl: bytes) -> int | None:
    """Where a delimiter line that ends at ``pos`` (after optional padding) ends, if it does."""
    if body.startswith(nl, pos):
        return pos + len(nl)
    padded = _skip_padding(body, pos)
    if padded != pos and body.startswith(nl, padded):
        return padded + len(nl)
    return None


def _skip_padding(body: bytes, pos: int) -> int:
    while body[pos : pos + 1] in (b" ", b"\t"):
        pos += 1
    return pos


def _part(index: int, head: bytes, data: bytes, nl: bytes, max_field_bytes: int | None) -> Part:
    headers = _headers(index, head, nl)
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise BadRequest(f"part {index} has no Content-Disposition header", part=index)
    plain = _PLAIN_DISPOSITION.fullmatch(disposition)
    if plain is not None:
        name, filename = plain.group(1), plain.group(2)
    else:
        kind, options = parse_options_header(disposition)
        if kind.lower() != "form-data":
            raise BadRequest(
                f"part {index} has Content-Disposition {kind!r}, not 'form-data'", part=index
            )
        if "name" not in options:
            raise BadRequest(
                f"part {index}'s Content-Disposition has no name parameter", part=index
            )
        name, filename = options["name"], options.get("filename")
    if filename is None and max_field_bytes is not None and len(data) > max_field_bytes:
        raise PayloadTooLarge(
            f"part {index} (field {name!r}) is {len(data)} bytes, "
            f"over the limit of {max_field_bytes} for a form field",
            part=index,
        )
    return Part(index, name, filename, headers.get("content-type"), data)


MAX_HEADER_BYTES = 16 * 1024
"""Largest header block of one part; browsers send a few hundred bytes."""


def _headers(index: int, head: bytes, nl: bytes) -> dict[str, str]:
    """The part's headers by lower-case name; the first of a repeated header wins."""
    if len(head) > MAX_HEADER_BYTES:
        raise PayloadTooLarge(
            f"part {index}'s headers are {len(head)} bytes, over the limit of {MAX_HEADER_BYTES}",
            part=index,
        )
    try:
        text = head.decode()
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"part {index}'s headers are not valid UTF-8 at byte {exc.start}", part=index
        ) from None
    # Each header is a name and the pieces of its value, joined once at the end: a value
    # folded over many lines costs linear time, not a new string per line.
    lines: list[tuple[str, list[str]]] = []
    for line in text.split(nl.decode()):
        if not line:
            continue  # only an empty header block has one
        if line[:1] in (" ", "\t") and lines:
            lines[-1][1].append(line.strip(" \t"))  # a folded line continues the previous one
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(
                f"part {index} has a header line without a colon: {line[:60]!r}", part=index
            )
        lines.append((name.strip(" \t").lower(), [value.strip(" \t")]))
    headers: dict[str, str] = {}
    for name, pieces in lines:
        if name not in headers:
            headers[name] = " ".join(pieces)
    return headers
