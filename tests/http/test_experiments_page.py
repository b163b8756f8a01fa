"""The experiments web page: served, self-contained, and its script parses."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.builders import write_repository
from tests.http.balanced import balanced_units
from tests.http.browser import browser_page
from tests.images import mnist, png
from tests.server import running_server
from tests.system import require

ADMIN = {"Authorization": "Bearer t-admin"}
FEEDBACK = {"Authorization": "Bearer t-feedback"}
TOKENS = {"HEADSTART_ADMIN_TOKEN": "t-admin", "HEADSTART_FEEDBACK_TOKEN": "t-feedback"}

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
    # Every route the script calls is one of the admin routes, on this server.
    for path in re.findall(r"api\(`?\"?(/v1/[a-z]+)", html):
        assert path in ("/v1/experiments", "/v1/repository")


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


@pytest.fixture
def three_arms(tmp_path: Path) -> Iterator[str]:
    """A server with a three-arm experiment whose arms are all exactly half right, and each
    got exactly 40 units."""
    repo = write_repository(tmp_path / "repo")
    database = f"sqlite:///{tmp_path / 'experiments.db'}"
    with running_server(repo, {**TOKENS, "HEADSTART_DATABASE_URL": database}) as url:
        arms = [
            {"name": "a", "variant": "pretrained"},
            {"name": "b", "variant": "baseline"},
            {"name": "c", "variant": "pretrained"},
        ]
        created = requests.post(
            f"{url}/v1/experiments",
            json={
                "name": "three",
                "model": "tiny",
                "mode": "split",
                "arms": arms,
                "guardrails": [{"metric": "latency"}],
            },
            headers=ADMIN,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        image = png(mnist()[0][0])
        items: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for unit in balanced_units(database, "three", 40):
            r = requests.post(
                f"{url}/v1/models/tiny/classify?experiment=three",
                files={"image": ("d.png", image)},
                headers={"X-Experiment-Unit": unit},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            arm, predicted = r.json()["experiment"]["arm"], r.json()["predictions"][0]["label"]
            seen[arm] = seen.get(arm, 0) + 1
            wrong = str((int(predicted) + 1) % 10)  # every other answer in each arm is wrong
            label = predicted if seen[arm] % 2 else wrong
            items.append({"request_id": r.headers["X-Request-ID"], "label": label})
        stored = requests.post(
            f"{url}/v1/feedback", json={"items": items}, headers=FEEDBACK, timeout=30
        )
        assert stored.json()["stored"] == 120, stored.text
        loaded = requests.post(
            f"{url}/v2/repository/models/tiny-baseline/load", headers=ADMIN, timeout=60
        )
        assert loaded.status_code == 200, loaded.text
        yield url


@pytest.mark.system
def test_every_contrast_is_drawn_at_its_level_and_a_stop_is_shown(
    three_arms: str, tmp_path: Path
) -> None:
    problems: list[str] = []
    with browser_page(tmp_path, problems) as page:
        page.goto(three_arms + "/experiments")
        page.fill("#token", "t-admin")
        page.click("button[type=submit]")
        page.wait_for_selector("#plot figure >> nth=1")
        captions = page.locator("#plot figcaption").all_inner_texts()
        assert [c.split(":")[0] for c in captions] == ["b \u2212 a", "c \u2212 a"]
        levels = page.locator("#plot line.level").evaluate_all(
            "lines => lines.map((l) => Number(l.dataset.level))"
        )
        assert levels == [0.025, 0.025]  # alpha 0.05 shared by two challengers
        assert page.locator("#contrasts tr").count() == 2
        assert page.inner_text("#decision").startswith("still collecting")
        # Each challenger's guardrail, waiting for the control's first 100 requests.
        rails = page.inner_text("#guardrails").split(" · ")
        assert rails == [
            f"Guardrail latency ({arm}, margin 0.05): not enough requests yet" for arm in "bc"
        ]

        stopped = requests.post(
            f"{three_arms}/v1/experiments/three/stop", headers=ADMIN, timeout=30
        )
        assert stopped.status_code == 200
        page.select_option("#pick", "three")
        page.dispatch_event("#pick", "change")
        page.wait_for_selector("#decision.stopped")
        assert page.inner_text("#decision").startswith("stopped before a verdict")
        trail = _cells(page, "#actions tr")
        assert [row[1:3] for row in trail] == [["create", "admin"], ["stop", "admin"]]
        assert "stopped" in page.inner_text("#title")
        (load,) = _cells(page, "#loads tr")
        assert load[1:5] == ["load", "tiny-baseline", "admin", "done"]
    assert problems == []


def _cells(page: Any, rows: str) -> list[list[str]]:
    """The text of every cell of the ``rows``, read from the DOM (not from the layout, which
    ``innerText`` depends on)."""
    found: list[list[str]] = page.locator(rows).evaluate_all(
        "rows => rows.map((r) => [...r.cells].map((c) => c.textContent))"
    )
    return found
