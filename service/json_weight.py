"""Refuse JSON bodies whose parsed form would need many times their size in memory.

Python holds every JSON value as an object of 24 to 64 bytes, so a body of ``[[],[],…]``
or ``[0.5,0.5,…]`` grows tenfold or more when parsed. Counting the bytes that open or
separate values (C speed, no parsing) bounds that before anything is built.
"""

from __future__ import annotations

from service.errors import PayloadTooLarge

MAX_JSON_VALUES = 1 << 20
"""Most values (arrays, objects and items) one JSON body may hold: a batch of 256 images of
3x32x32 as numbers is 786,432; larger tensors belong in the binary tensor extension."""


def check_json_weight(body: bytes, what: str, limit: int = MAX_JSON_VALUES) -> None:
    """Raise ``PayloadTooLarge`` when ``body`` may hold more than ``limit`` JSON values.

    Commas and brackets inside strings count too: an overestimate, never an under.
    """
    values = body.count(b",") + body.count(b"[") + body.count(b"{")
    if values > limit:
        raise PayloadTooLarge(
            f"{what} holds up to {values} JSON values, over the limit of {limit}; "
            "send large tensors as binary data"
        )
