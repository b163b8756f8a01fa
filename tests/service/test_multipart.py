"""The buffered multipart reader: the same parts Werkzeug's form parser finds, and clear errors."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import requests
import urllib3
from werkzeug.http import parse_options_header
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from service.api.multipart import Part, parse_form
from service.app import create_app
from service.errors import BadRequest, PayloadTooLarge
from service.settings import Settings
from tests.images import mnist, png

B = "b0undary"
Found = tuple[list[tuple[str, str, str | None, bytes]], list[tuple[str, str]]]


def werkzeug_parts(body: bytes, content_type: str) -> Found:
    """Files (name, filename, content type, bytes) and fields (name, value), as Werkzeug reads them."""
    environ = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    with Request(environ) as request:  # closing it closes the spooled files
        files = [
            (k, f.filename or "", f.content_type, f.read()) for k, f in request.files.items(True)
        ]
        return files, list(request.form.items(True))


def our_parts(body: bytes, boundary: str) -> Found:
    """The same view of ``parse_form``'s parts."""
    parts = parse_form(body, boundary)
    files = [(p.name, p.filename or "", p.content_type, p.data) for p in parts if p.is_file]
    return files, [(p.name, p.text()) for p in parts if not p.is_file]


def assert_same_as_werkzeug(body: bytes, boundary: str) -> Found:
    found = our_parts(body, boundary)
    assert found == werkzeug_parts(body, f"multipart/form-data; boundary={boundary}")
    assert found != ([], [])  # an empty form would match Werkzeug's silent failure too
    return found


def tricky_bytes(boundary: str, seed: int) -> bytes:
    """Binary data full of CRLFs, dashes and near-delimiters, but no real delimiter line."""
    rng = random.Random(seed)
    pieces = [
        b"\r\n",
        b"--",
        b"\r\n--",
        f"x--{boundary}".encode(),
        f"\r\n--{boundary}x".encode(),
        f"\r\n--{boundary[:-1]}\r\n".encode(),
        f"\n-{boundary}--".encode(),
        b"\r\n\r\n",
        rng.randbytes(7),
    ]
    return b"".join(rng.choice(pieces) for _ in range(40))


def test_urllib3_body_with_files_fields_and_tricky_bytes() -> None:
    boundary = "c0ffee-boundary"
    digit = png(mnist()[0][0])
    fields: list[tuple[str, str | tuple[str, bytes, str]]] = [
        ("image", ("0.png", digit, "image/png")),
        ("label", "7"),
        ("image", ("tricky.bin", tricky_bytes(boundary, 1), "application/octet-stream")),
        ("label", "seven, with ünïcode"),
        ("image", ("empty.png", b"", "image/png")),
        ("other", ("x.bin", tricky_bytes(boundary, 2), "application/octet-stream")),
    ]
    body, content_type = urllib3.encode_multipart_formdata(fields, boundary=boundary)
    assert content_type == f"multipart/form-data; boundary={boundary}"
    files, form = assert_same_as_werkzeug(body, boundary)
    assert [f[1] for f in files] == ["0.png", "tricky.bin", "empty.png", "x.bin"]
    assert files[0][3] == digit
    assert files[2][3] == b""
    assert form == [("label", "7"), ("label", "seven, with ünïcode")]


def test_requests_body_with_many_parts() -> None:
    digits = [png(d) for d in mnist()[0][:40]]
    prepared = requests.Request(
        "POST",
        "http://127.0.0.1/",
        files=[("image", (f"{i}.png", d, "image/png")) for i, d in enumerate(digits)],
        data={"label": [str(i % 10) for i in range(40)]},
    ).prepare()
    content_type = prepared.headers["Content-Type"]
    boundary = content_type.partition("boundary=")[2]
    assert isinstance(prepared.body, bytes)
    files, form = assert_same_as_werkzeug(prepared.body, boundary)
    assert [f[3] for f in files] == digits
    assert [v for _, v in form] == [str(i % 10) for i in range(40)]


def test_werkzeug_encoded_body_opens_with_a_line_break() -> None:
    data = {
        "image": [(io.BytesIO(b"\r\n--\r\n"), "a.png"), (io.BytesIO(b"two"), "b.png")],
        "label": "3",
    }
    environ = EnvironBuilder(method="POST", data=data).get_environ()
    body = environ["wsgi.input"].read()
    assert body.startswith(b"\r\n--")  # the first delimiter follows an empty preamble's break
    boundary = parse_options_header(environ["CONTENT_TYPE"])[1]["boundary"]
    files, form = assert_same_as_werkzeug(body, boundary)
    assert [(f[1], f[3]) for f in files] == [("a.png", b"\r\n--\r\n"), ("b.png", b"two")]
    assert form == [("label", "3")]


def _form(*parts: str, nl: str = "\r\n", preamble: str = "", epilogue: str = "") -> bytes:
    """A body from ``(headers, data)`` strings joined by ``nl``."""
    body = preamble + "".join(f"--{B}{nl}{p}{nl}" for p in parts) + f"--{B}--" + epilogue
    return body.encode()


def _file(name: str = "image", filename: str = "a.png", data: str = "DATA") -> str:
    return f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n{data}'


@pytest.mark.parametrize(
    ("body", "files", "fields"),
    [
        pytest.param(
            _form(_file(), preamble="This is a preamble\r\nwith --b0undar lines\r\n"),
            [("image", "a.png", None, b"DATA")],
            [],
            id="preamble",
        ),
        pytest.param(
            _form(_file(), epilogue="\r\nthe epilogue, with --b0undary\r\nignored"),
            [("image", "a.png", None, b"DATA")],
            [],
            id="epilogue",
        ),
        pytest.param(
            f"--{B} \t\r\n{_file()}\r\n--{B}  \r\n"
            f'Content-Disposition: form-data; name="label"\r\n\r\n5\r\n--{B}-- \r\n'.encode(),
            [("image", "a.png", None, b"DATA")],
            [("label", "5")],
            id="transport-padding",
        ),
        pytest.param(
            _form(
                _file(data="A\n"), 'Content-Disposition: form-data; name="label"\n\n1', nl="\n"
            ).replace(b"\r\n", b"\n"),
            [("image", "a.png", None, b"A\n")],
            [("label", "1")],
            id="lf-only",
        ),
        pytest.param(
            _form(
                'content-disposition: form-data; name="a\\"b"; filename="c%22d.png"\r\n'
                "CONTENT-TYPE:  image/png \r\n\r\nx",
                'Content-Disposition: form-data; name=tok; filename=""\r\n\r\n',
                'Content-Disposition: form-data; name="image"; filename="%22q%22.png"\r\n\r\nq',
                "Content-Disposition: form-data; name=\"image\"; filename*=UTF-8''%C3%A9t%C3%A9.png"
                "\r\n\r\ny",
            ),
            [
                ('a"b', 'c"d.png', "image/png", b"x"),
                ("tok", "", None, b""),
                ("image", '"q".png', None, b"q"),
                ("image", "été.png", None, b"y"),
            ],
            [],
            id="quoting-and-rfc2231",
        ),
        pytest.param(
            _form('Content-Disposition: form-data; name="image";\r\n filename="été.png"\r\n\r\nz'),
            [("image", "été.png", None, b"z")],
            [],
            id="folded-header-utf8-filename",
        ),
        pytest.param(
            f'--{B}\r\nContent-Disposition: form-data; name="label"\r\n\r\n--{B}\r\n'
            f"{_file(data='')}\r\n--{B}--".encode(),
            [("image", "a.png", None, b"")],
            [("label", "")],
            id="empty-parts",
        ),
        pytest.param(
            _form(_file(data=f"\r\n--{B}x\r\n--{B[:-1]}\r\n\r\nx--{B}--")),
            [("image", "a.png", None, f"\r\n--{B}x\r\n--{B[:-1]}\r\n\r\nx--{B}--".encode())],
            [],
            id="boundary-like-data",
        ),
    ],
)
def test_hand_written_bodies_match_werkzeug(
    body: bytes, files: list[tuple[str, str, str | None, bytes]], fields: list[tuple[str, str]]
) -> None:
    assert assert_same_as_werkzeug(body, B) == (files, fields)


def test_close_delimiter_alone_is_an_empty_form() -> None:
    assert parse_form(f"--{B}--\r\n".encode(), B) == []


def test_parts_keep_order_index_and_content_type() -> None:
    body = _form(
        'Content-Disposition: form-data; name="label"\r\nContent-Type: text/plain\r\n\r\n2',
        _file(),
    )
    assert parse_form(body, B) == [
        Part(0, "label", None, "text/plain", b"2"),
        Part(1, "image", "a.png", None, b"DATA"),
    ]


def test_field_charset_from_its_content_type() -> None:
    latin = Part(0, "label", None, "text/plain; charset=ISO-8859-1", "é".encode("latin-1"))
    assert latin.text() == "é"


def test_part_limit() -> None:
    body = _form(*[_file(filename=f"{i}.png") for i in range(12)])
    assert len(parse_form(body, B, max_parts=12)) == 12
    with pytest.raises(PayloadTooLarge, match=r"^the multipart body has over 11 parts$"):
        parse_form(body, B, max_parts=11)


def test_field_size_limit_spares_files() -> None:
    body = _form(_file(data="x" * 10), 'Content-Disposition: form-data; name="label"\r\n\r\n123')
    assert len(parse_form(body, B, max_field_bytes=3)) == 2
    with pytest.raises(PayloadTooLarge, match=r"^part 1 \(field 'label'\) is 3 bytes, over .* 2 "):
        parse_form(body, B, max_field_bytes=2)


CD = 'Content-Disposition: form-data; name="label"'


@pytest.mark.parametrize(
    ("body", "boundary", "message"),
    [
        (_form(_file()), None, "the multipart/form-data content type has no boundary parameter"),
        (_form(_file()), "", "the multipart/form-data content type has no boundary parameter"),
        (_form(_file()), "bøundary€", "the multipart boundary 'bøundary€' is not Latin-1"),
        (_form(_file()), "other", "the multipart body has no delimiter line '--other'"),
        (f"x--{B}\r\n{_file()}".encode(), B, f"the multipart body has no delimiter line '--{B}'"),
        (
            f"--{B}".encode(),
            B,
            (
                f"the multipart body ends after its first delimiter; it has no close delimiter "
                f"'--{B}--'"
            ),
        ),
        (
            f"--{B}\r\n{_file()}\r\n".encode(),
            B,
            (
                f"part 0 is not followed by a delimiter; the multipart body has no close delimiter "
                f"'--{B}--'"
            ),
        ),
        (
            f"--{B}\r\n{_file()}\r\n--{B}\r\n{CD}\r\n--{B}--".encode(),
            B,
            "part 1 has no blank line ending its headers",
        ),
        (
            f"--{B}\r\n{CD}\r\n--{B}\r\n{_file()}\r\n--{B}--".encode(),
            B,
            "part 0 has no blank line ending its headers",
        ),
        (
            _form(_file(), "Content-Type: text/plain\r\n\r\n4"),
            B,
            "part 1 has no Content-Disposition header",
        ),
        (_form("\r\n4"), B, "part 0 has no Content-Disposition header"),
        (
            _form('Content-Disposition: attachment; name="a"\r\n\r\n4'),
            B,
            "part 0 has Content-Disposition 'attachment', not 'form-data'",
        ),
        (
            _form('Content-Disposition: form-data; filename="a.png"\r\n\r\n4'),
            B,
            "part 0's Content-Disposition has no name parameter",
        ),
        (
            _form(f"{CD}\r\nnot a header\r\n\r\n4"),
            B,
            "part 0 has a header line without a colon: 'not a header'",
        ),
        (
            _form(_file()).replace(b'"a.png"', b'"\xff.png"'),
            B,
            "part 0's headers are not valid UTF-8 at byte 56",
        ),
    ],
)
def test_malformed_bodies_say_what_and_where(
    body: bytes, boundary: str | None, message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_form(body, boundary)
    assert caught.value.message == message


def test_undecodable_field_is_a_clear_400() -> None:
    (part,) = parse_form(_form(f"{CD}\r\n\r\nabXc").replace(b"X", b"\xff"), B)
    with pytest.raises(
        BadRequest, match=r"^part 0 \(field 'label'\) is not valid utf-8 at byte 2$"
    ):
        part.text()


def test_classify_reads_multipart_through_the_app(repository: Path) -> None:
    client = create_app(Settings(model_repository=repository)).test_client()
    digits = [png(d) for d in mnist()[0][:3]]
    body, content_type = urllib3.encode_multipart_formdata(
        [("image", (f"{i}.png", d, "image/png")) for i, d in enumerate(digits)]
    )
    form = client.post("/v1/models/tiny/classify", data=body, content_type=content_type)
    assert form.status_code == 200
    singles = [
        client.post("/v1/models/tiny/classify", data=d, content_type="image/png").get_json()
        for d in digits
    ]
    batch = form.get_json()["predictions"]
    assert [p["class_index"] for p in batch] == [
        s["predictions"][0]["class_index"] for s in singles
    ]
    assert [p["probability"] for p in batch] == pytest.approx(
        [s["predictions"][0]["probability"] for s in singles], rel=1e-5
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (
            _form(_file()),
            "multipart/form-data",
            400,
            "the multipart/form-data content type has no boundary parameter",
        ),
        (
            _form(_file())[:-8],
            f"multipart/form-data; boundary={B}",
            400,
            (
                f"part 0 is not followed by a delimiter; the multipart body has no close delimiter "
                f"'--{B}--'"
            ),
        ),
        (
            _form(f"{CD}\r\n\r\n1"),
            f"multipart/form-data; boundary={B}",
            400,
            "the multipart body has no 'image' file part",
        ),
        (
            _form(_file(), f"{CD}\r\n\r\nX").replace(b"X", b"\xff"),
            f"multipart/form-data; boundary={B}",
            400,
            "part 1 (field 'label') is not valid utf-8 at byte 0",
        ),
        (
            _form(_file(), f"{CD}\r\n\r\n1", 'Content-Disposition: form-data; name="x"\r\n\r\n2'),
            f"multipart/form-data; boundary={B}",
            413,
            "the multipart body has over 2 parts",
        ),
    ],
)
def test_multipart_errors_through_the_app(
    repository: Path, body: bytes, content_type: str, status: int, message: str
) -> None:
    app = create_app(Settings(model_repository=repository))
    app.config["MAX_FORM_PARTS"] = 2
    response = app.test_client().post(
        "/v1/models/tiny/classify", data=body, content_type=content_type
    )
    assert response.status_code == status
    assert response.json is not None
    assert response.json["error"]["message"] == message


def test_header_folded_over_thousands_of_lines_is_joined() -> None:
    folds = "\r\n ".join(["text/plain;", *["x=y;"] * 2000, "charset=latin-1"])
    body = _form(f"{CD}\r\nContent-Type: {folds}\r\n\r\n\xe9")
    (part,) = parse_form(body, B)
    assert part.content_type == " ".join(["text/plain;", *["x=y;"] * 2000, "charset=latin-1"])


def test_oversized_part_headers_are_refused() -> None:
    folds = "\r\n ".join(["x"] * 10_000)  # 30 KB of header, as a million folds would be
    body = _form(f"{CD}\r\nX-Note: {folds}\r\n\r\n7")
    with pytest.raises(PayloadTooLarge, match=r"^part 0's headers are \d+ bytes, over the limit"):
        parse_form(body, B)
