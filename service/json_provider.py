"""Flask's JSON through orjson: an answer carries several floats per image, and with the
standard library's encoder writing a batch's answer cost a third as much as running the model.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class OrjsonProvider(JSONProvider):
    """``jsonify`` and ``app.json`` backed by orjson: compact, keys in insertion order.

    Where the standard library would write ``NaN`` or ``Infinity`` (not JSON), orjson
    writes ``null``.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)
        return Response(body, mimetype="application/json")
