from __future__ import annotations

from service.experiments.decision import Contrast, decide


def _decide(contrasts: list[Contrast], **kw: object) -> tuple[str, str | None, str]:
    options: dict[str, object] = {
        "alpha": 0.05,
        "mde": None,
        "metric": "accuracy",
        "srm_p": 0.5,
        "srm_flagged": False,
    }
    options.update(kw)
    d = decide("a", contrasts, **options)  # type: ignore[arg-type]
    return d.state, d.winner, d.message


def test_a_sample_ratio_mismatch_overrides_everything() -> None:
    state, winner, message = _decide(
        [Contrast("b", 0.2, 1e-9, (0.1, 0.3))], srm_p=1e-6, srm_flagged=True
    )
    assert (state, winner) == ("sample_ratio_mismatch", None)
    assert "do not trust" in message


def test_the_better_side_wins_either_way() -> None:
    assert _decide([Contrast("b", 0.05, 0.01, (0.01, 0.09))])[:2] == ("winner", "b")
    state, winner, message = _decide([Contrast("b", -0.05, 0.01, (-0.09, -0.01))])
    assert (state, winner) == ("winner", "a")
    assert message.startswith("arm a better than b")


def test_alpha_is_split_over_the_challengers() -> None:
    contrasts = [Contrast("b", 0.05, 0.03, (0.0, 0.1)), Contrast("c", 0.01, 0.5, (-0.1, 0.1))]
    assert _decide(contrasts)[0] == "collecting"  # 0.03 > 0.05 / 2
    contrasts[0] = Contrast("b", 0.05, 0.02, (0.0, 0.1))
    assert _decide(contrasts)[:2] == ("winner", "b")


def test_no_difference_needs_every_sequence_inside_the_minimum_effect() -> None:
    inside = Contrast("b", 0.001, 0.6, (-0.01, 0.012))
    assert _decide([inside], mde=0.02)[0] == "no_difference"
    assert _decide([inside], mde=None)[0] == "collecting"
    wide = Contrast("b", 0.001, 0.6, (-0.03, 0.012))
    assert _decide([wide], mde=0.02)[0] == "collecting"
    assert _decide([], mde=0.02)[0] == "collecting"


def test_a_feedback_rate_mismatch_overrides_a_winner_but_not_a_sample_ratio_mismatch() -> None:
    winner = [Contrast("b", 0.2, 1e-9, (0.1, 0.3))]
    state, _, message = _decide(winner, feedback_p=1e-5, feedback_flagged=True)
    assert state == "feedback_rate_mismatch"
    assert "do not trust" in message
    both = _decide(winner, srm_p=1e-6, srm_flagged=True, feedback_p=1e-5, feedback_flagged=True)
    assert both[0] == "sample_ratio_mismatch"


def test_a_stopped_experiment_reads_stopped_unless_it_reached_a_verdict() -> None:
    undecided = [Contrast("b", 0.01, 0.5, (-0.1, 0.1))]
    assert _decide(undecided, stopped=True)[0] == "stopped"
    assert _decide(undecided)[0] == "collecting"
    decided = [Contrast("b", 0.05, 0.01, (0.01, 0.09))]
    assert _decide(decided, stopped=True)[:2] == ("winner", "b")
