"""Which requests a worker may run on its event loop instead of handing them to a thread.

:mod:`service.front` runs a small request on the event loop when this rule allows it and its
route has been cheap lately. A request run there must wait on nothing that yields: while it
runs, no other connection is served, and a wait that yields to the event loop (gevent makes
psycopg's socket waits yield) would let another request run on the same thread, in the middle
of this one's thread-local state. So the rule allows single inference requests (v1 classify,
embed and compare; V2 infer), and only with dynamic batching off, whose batches wait for
other requests. A request routed through an experiment writes its exposure to the database:
on SQLite, whose calls block without yielding, it may run there too; on PostgreSQL it goes
to a thread. The promoted default a plain request looks up is kept fresh by a background
thread under gunicorn (:meth:`service.experiments.store.ExperimentStore.keep_defaults_fresh`),
so that request reads no database at all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service.settings import Settings

if TYPE_CHECKING:  # the front needs gevent; the app that states its rule does not
    from service.front import InlineRule

INLINE_RULE = "headstart.inline"
"""Where the app keeps its rule, in ``app.extensions``, for the worker's front."""

_V1 = re.compile(r"/v1/models/[^/]+/(?:classify|embed|compare)")
_V2 = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer")


def rule(settings: Settings) -> InlineRule | None:
    """The rule for an app configured by ``settings``; None when nothing may run inline."""
    if settings.batch_max_size > 1:
        return None
    url = settings.database_url
    try:
        sqlite = url is None or make_url(url).get_backend_name() == "sqlite"
    except ArgumentError:
        sqlite = False  # the store says what is wrong with it; nothing routed runs here
    return inference if sqlite else unrouted_inference


def inference(environ: dict[str, Any], body: bytes) -> bool:
    """Whether this is a single inference request (see the module's doc)."""
    if environ.get("REQUEST_METHOD") != "POST":
        return False
    path = environ.get("PATH_INFO", "")
    return bool(_V1.fullmatch(path) or _V2.fullmatch(path))


def unrouted_inference(environ: dict[str, Any], body: bytes) -> bool:
    """Whether this is a single inference request that names no experiment."""
    if not inference(environ, body):
        return False
    if environ["PATH_INFO"].startswith("/v1/"):
        query = environ.get("QUERY_STRING", "")
        return not query or all(key != "experiment" for key, _ in parse_qsl(query, True))
    # An experiment is named among the body's parameters, perhaps with JSON's escapes; the
    # bytes are searched rather than parsed: a false match costs only the hand-off.
    return b"experiment" not in body and b"\\u" not in body
