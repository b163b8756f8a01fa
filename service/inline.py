"""Which requests a worker may run on its event loop instead of handing them to a thread.

:mod:`service.front` runs a small request on the event loop when this rule allows it and its
route has been cheap lately. A request run there must wait on nothing: while it runs, no other
connection is served, and a wait that yields to the event loop (gevent makes psycopg's
socket waits yield) would let another request run on the same thread, in the middle of this
one's thread-local state. So the rule allows single inference requests (v1 classify, embed
and compare; V2 infer) that are not routed through an experiment, whose exposures are
written to the database, and only with dynamic batching off, whose batches wait for other
requests. The promoted default a plain request looks up is kept fresh by a background
thread under gunicorn (:meth:`service.experiments.store.ExperimentStore.keep_defaults_fresh`),
so the request itself reads no database.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

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
    return runs_inline


def runs_inline(environ: dict[str, Any], body: bytes) -> bool:
    """Whether this request waits on nothing but its own work (see the module's doc)."""
    if environ.get("REQUEST_METHOD") != "POST":
        return False
    path = environ.get("PATH_INFO", "")
    if _V1.fullmatch(path):
        query = environ.get("QUERY_STRING", "")
        return not query or all(key != "experiment" for key, _ in parse_qsl(query, True))
    if _V2.fullmatch(path):
        # An experiment is named among the body's parameters, perhaps with JSON's escapes;
        # the bytes are searched rather than parsed: a false match costs only the hand-off.
        return b"experiment" not in body and b"\\u" not in body
    return False
