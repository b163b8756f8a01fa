from __future__ import annotations

import pytest

from service.errors import PayloadTooLarge
from service.json_weight import check_json_weight


def test_counts_every_array_object_and_separator() -> None:
    body = b'{"a": [[1, 2], {"b": 3}]}'  # 2 objects, 2 arrays, 2 commas
    check_json_weight(body, "the body", limit=6)
    with pytest.raises(
        PayloadTooLarge, match=r"^the body holds up to 6 JSON values, over the limit of 5; "
    ):
        check_json_weight(body, "the body", limit=5)


def test_a_flat_image_batch_fits_the_default_limit() -> None:
    values = ",".join(["255"] * (256 * 3 * 32 * 32))
    check_json_weight(f'{{"data": [{values}]}}'.encode(), "the body")
