"""Act on an experiment's results without an admin, when its definition asks for it.

Every :data:`~service.settings.Settings.policy_interval_seconds`, each worker reads the
results of every running experiment that has a policy, and:

- **promotes** a challenger that the always-valid test calls better than the control, with
  no guardrail breached: its variant becomes the model's default and the experiment stops;
- **rolls back** when a guardrail is breached, or when the test calls the control better
  than a challenger: the control's variant becomes (or stays) the default and the experiment
  stops, so every request that names no variant goes to the control, and requests still
  routed through the experiment are told it was stopped.

Nothing happens while the sample-ratio or feedback-rate checks say the results cannot be
trusted. The action and its evidence (the decision, each contrast, each guardrail) go into
the experiment's audit trail under the actor ``policy``. Workers and replicas may read the
same results at once: the store lets exactly one of them stop the experiment and act.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from service.experiments.analysis import results
from service.experiments.definition import Experiment
from service.experiments.store import ExperimentStore

log = logging.getLogger(__name__)

ACTOR = "policy"


def evaluate(store: ExperimentStore, experiment: Experiment) -> str | None:
    """Apply ``experiment``'s policy to its results once: ``"promote"``, ``"rollback"``, or
    None when there is nothing to do (or another worker acted first)."""
    policy = experiment.policy
    if policy is None or experiment.status != "running" or experiment.mode != "split":
        return None
    comparison = results(store, experiment)["comparison"]
    decision = comparison["decision"]
    control = experiment.control.name
    if decision["state"] == "winner" and decision["winner"] != control:
        action, arm = ("promote", decision["winner"]) if policy.promote else (None, None)
    elif decision["state"] == "guardrail_breached" or (
        decision["state"] == "winner" and decision["winner"] == control
    ):
        action, arm = ("rollback", control) if policy.rollback else (None, None)
    else:
        return None
    if action is None or arm is None:
        return None
    done = store.promote(
        experiment.name, arm, _evidence(comparison), ACTOR, action=action, while_running=True
    )
    if done is None:
        return None
    log.info("experiment %s: %s to arm %s (%s)", experiment.name, action, arm, decision["message"])
    return action


def _evidence(comparison: dict[str, Any]) -> dict[str, Any]:
    """What the action rested on, for the audit trail (no trajectories)."""
    return {
        "decision": comparison["decision"]["message"],
        "contrasts": [
            {
                key: c.get(key)
                for key in ("arm", "difference", "always_valid_p_value", "confidence_sequence")
            }
            for c in comparison["contrasts"]
        ],
        "guardrails": comparison.get("guardrails", []),
    }


class Runner:
    """Evaluates every running experiment with a policy, every ``interval`` seconds, in a
    daemon thread of its own (a real thread: the gevent worker leaves ``threading`` alone)."""

    def __init__(self, store: Callable[[], ExperimentStore | None], interval: float) -> None:
        self.store = store
        self.interval = interval
        self._stopping = threading.Event()

    def start(self) -> None:
        if self.interval > 0:
            threading.Thread(target=self._loop, name="headstart-policy", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a failed round (the database away) must not end the next
                log.exception("experiment policy")

    def tick(self) -> list[tuple[str, str]]:
        """One round over the running experiments; the actions taken, as (name, action)."""
        store = self.store()
        if store is None:
            return []
        taken = []
        for experiment in store.all():
            action = evaluate(store, experiment)
            if action is not None:
                taken.append((experiment.name, action))
        return taken
