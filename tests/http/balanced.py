"""Traffic whose units the experiment's own assignment spreads evenly over its arms."""

from __future__ import annotations


def balanced_units(database: str, name: str, each: int) -> list[str]:
    """Units that the experiment's own assignment gives ``each`` to every arm: with units
    drawn blindly, its random salt would leave the arms unequal often enough for the
    sample-ratio check to flag about one run in a thousand, and a test that reads the
    results to see it."""
    from service.experiments.assignment import assign
    from service.experiments.store import ExperimentStore

    store = ExperimentStore(database)
    experiment = store.get(name)
    store.engine.dispose()
    assert experiment is not None
    chosen: dict[str, list[str]] = {arm.name: [] for arm in experiment.arms}
    for i in range(100_000):
        unit = f"u{i}"
        picked = chosen[assign(experiment.salt, experiment.arms, unit).name]
        if len(picked) < each:
            picked.append(unit)
        if all(len(units) == each for units in chosen.values()):
            break
    return sorted((u for units in chosen.values() for u in units), key=lambda u: int(u[1:]))
