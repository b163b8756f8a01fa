"""The ``N,N,...`` option values several commands take."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive_ints(kind: str, rule: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse ``type`` for a comma-separated list of ``kind``, each 1 or more.

    ``rule`` is the message's wording for a value below 1.
    """

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {kind}"
            ) from None
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: {rule}")
        return values

    return parse
