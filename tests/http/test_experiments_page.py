"""The experiments web page: served, self-contained, and its script parses."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.system import require

PAGE = Path(__file__).resolve().parents[2] / "service" / "static" / "experiments.html"


def test_the_page_is_served_at_experiments(live_server: str, http: requests.Session) -> None:
    response = http.get(f"{live_server}/experiments")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Online experiments" in response.text


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = PAGE.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "fetch(path" in html
    # Every route the script calls exists and answers JSON.
    for path in re.findall(r"api\(`?\"?(/v1/[a-z]+)", html):
        assert path == "/v1/experiments"


@pytest.mark.system
def test_the_script_is_valid_javascript(tmp_path: Path) -> None:
    node = require("node", "nodejs")
    script = re.search(r"<script>(.*)</script>", PAGE.read_text(), re.DOTALL)
    assert script is not None
    (tmp_path / "page.js").write_text(script.group(1))
    done = subprocess.run(
        [node, "--check", tmp_path / "page.js"], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
