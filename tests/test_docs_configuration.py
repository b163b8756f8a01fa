"""The configuration page lists every setting, under its environment variable, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _rows() -> dict[str, str]:
    """``HEADSTART_*`` variable -> the default column of its row (a row may name two)."""
    rows: dict[str, str] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`HEADSTART_"):
            continue
        names = re.findall(r"`(HEADSTART_\w+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) != len(names):
            defaults = [cells[1]] * len(names)
        rows.update(zip(names, defaults, strict=True))
    return rows


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def test_every_setting_is_on_the_configuration_page_with_its_default() -> None:
    rows = _rows()
    for name, field in Settings.model_fields.items():
        variable = f"HEADSTART_{name.upper()}"
        assert variable in rows, f"{variable} is missing from {PAGE.name}"
        assert rows[variable] == _shown(field.default), variable
    unknown = set(rows) - {f"HEADSTART_{n.upper()}" for n in Settings.model_fields}
    assert not unknown, f"{PAGE.name} lists settings the service does not have: {unknown}"
