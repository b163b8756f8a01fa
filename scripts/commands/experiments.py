"""``headstart experiments create|list|show|stop|simulate``: online A/B tests on a running server.

The commands talk to the server's admin routes over HTTP with the admin token, so they work
the same against one local server or a fleet of replicas behind a load balancer, and never
bypass the checks the server makes (loaded variants, names, weights).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scripts.commands import _plan, _simulate
from scripts.commands._connection import add_connection_options, client, utc
from scripts.errors import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "experiments",
        help="create, inspect and stop online A/B experiments on a running server",
        description=(
            "Create, inspect and stop online A/B experiments through a running server's admin "
            "routes (they need the server's admin token), or check the statistics by simulation."
        ),
    )
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="start an experiment",
        description="Start an experiment that splits (or shadows) a model's traffic between arms.",
    )
    add_connection_options(create)
    create.add_argument("name", help="experiment name (letters, digits, . _ -)")
    create.add_argument("--model", required=True, help="the model whose traffic is split")
    create.add_argument(
        "--arm",
        action="append",
        required=True,
        metavar="NAME=VARIANT[@VERSION][:WEIGHT]",
        help="an arm, e.g. a=pretrained:1, or b=pretrained@2:1 for the variant's version 2 "
        "(give two or more; the first is the control)",
    )
    create.add_argument(
        "--mode",
        choices=("split", "shadow"),
        default="split",
        help="split: each request answered by its arm; shadow: the first arm answers and the "
        "second runs unseen on the same input (default: split)",
    )
    create.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default: 0.05)"
    )
    create.add_argument(
        "--mde",
        type=float,
        default=None,
        help="minimum detectable effect on the metric's scale, e.g. 0.02 for 2 accuracy points",
    )
    create.add_argument(
        "--metric",
        choices=("accuracy", "outcome"),
        default="accuracy",
        help="what the arms are compared on: accuracy (feedback labels against predictions) or "
        "outcome (the mean of feedback numbers) (default: accuracy)",
    )
    create.add_argument(
        "--guardrail",
        action="append",
        default=[],
        metavar="METRIC[:MARGIN]",
        help="what no challenger may make worse, repeatable: latency (share of requests slower "
        "than the control's 95th percentile; margin 0.05 unless given), errors (share of "
        "routed requests the arm failed; margin 0.01 unless given) or outcome (with "
        "accuracy as the metric; margin 0 unless given), e.g. latency:0.1 (default: none)",
    )
    create.add_argument(
        "--auto",
        choices=("promote", "rollback", "both"),
        default=None,
        help="let the service act on the results by itself: promote a winning challenger, "
        "roll back a harmful one, or both (default: neither)",
    )
    create.set_defaults(func=run_create)

    listing = actions.add_parser(
        "list",
        help="list experiments",
        description="List every experiment on the server with its model, mode, status and arms.",
    )
    add_connection_options(listing)
    listing.set_defaults(func=run_list)

    show = actions.add_parser(
        "show",
        help="an experiment's per-arm results and its verdict",
        description=(
            "Print an experiment's per-arm exposures, feedback and accuracy with intervals, each "
            "arm against the control, the sample-ratio check and the decision."
        ),
    )
    add_connection_options(show)
    show.add_argument("name", help="the experiment's name")
    show.add_argument("--json", action="store_true", help="print the server's JSON as is")
    show.set_defaults(func=run_show)

    stop = actions.add_parser(
        "stop",
        help="stop an experiment (its feedback is still accepted)",
        description=(
            "Stop routing requests through an experiment; feedback on its recorded requests is "
            "still accepted and its results stay readable."
        ),
    )
    add_connection_options(stop)
    stop.add_argument("name", help="the experiment's name")
    stop.set_defaults(func=run_stop)

    ramp = actions.add_parser(
        "ramp",
        help="give a running experiment's arms new weights",
        description=(
            "Give every arm of a running split experiment a new weight, from the next request "
            "on (a ramp, e.g. 9:1 to 1:1); the results compare the arms within each period of "
            "weights, and the ramp is kept in the experiment's audit trail."
        ),
    )
    add_connection_options(ramp)
    ramp.add_argument("name", help="the experiment's name")
    ramp.add_argument(
        "--weight",
        action="append",
        required=True,
        metavar="ARM=WEIGHT",
        help="an arm's new weight, e.g. b=1 (give one for every arm)",
    )
    ramp.set_defaults(func=run_ramp)

    promote = actions.add_parser(
        "promote",
        help="make the winning arm's variant its model's default",
        description=(
            "Make the winning arm's variant what the model serves when a request names no "
            "variant, and stop the experiment; refused while the results name no winner."
        ),
    )
    add_connection_options(promote)
    promote.add_argument("name", help="the experiment's name")
    promote.set_defaults(func=run_promote)

    _plan.register(actions)
    _simulate.register(actions)


def parse_arm(text: str) -> dict[str, Any]:
    """``a=pretrained:2`` -> ``{"name": "a", "variant": "pretrained", "weight": 2.0}``;
    ``b=pretrained@2`` names the variant's version 2."""
    name, sep, rest = text.partition("=")
    reference, _, weight = rest.partition(":")
    variant, at, version = reference.partition("@")
    if not sep or not name or not variant or (at and not version):
        raise CommandError(
            f"--arm {text!r}: write NAME=VARIANT[@VERSION][:WEIGHT], e.g. a=pretrained:1 "
            "or b=pretrained@2:1",
            2,
        )
    try:
        value = float(weight) if weight else 1.0
    except ValueError:
        raise CommandError(f"--arm {text!r}: weight {weight!r} is not a number", 2) from None
    arm: dict[str, Any] = {"name": name, "variant": variant, "weight": value}
    if version:
        arm["version"] = version
    return arm


def arm_text(arm: dict[str, Any]) -> str:
    """An arm as ``--arm`` takes it: ``b=pretrained@2:1``."""
    return f"{arm['name']}={variant_text(arm)}:{arm['weight']:g}"


def variant_text(served: dict[str, Any]) -> str:
    """An arm's (or a promotion's) variant, with its version if it names one: ``pretrained@2``."""
    version = served.get("version")
    return f"{served['variant']}@{version}" if version else str(served["variant"])


def parse_guardrail(text: str) -> dict[str, Any]:
    """``latency`` or ``latency:0.1`` as the API's guardrail; the server checks the rest."""
    metric, _, margin = text.partition(":")
    if not margin:
        return {"metric": metric}
    try:
        return {"metric": metric, "margin": float(margin)}
    except ValueError:
        raise CommandError(
            f"--guardrail {text}: the margin {margin!r} is not a number (e.g. latency:0.1)", 2
        ) from None


def run_create(args: argparse.Namespace) -> int:
    arms = [parse_arm(a) for a in args.arm]
    if len(arms) < 2:
        raise CommandError(
            f"an experiment needs two or more arms, got {len(arms)}: give --arm once per arm, "
            "e.g. --arm a=baseline --arm b=pretrained",
            2,
        )
    body = {
        "name": args.name,
        "model": args.model,
        "mode": args.mode,
        "arms": arms,
        "alpha": args.alpha,
        "minimum_detectable_effect": args.mde,
        "metric": args.metric,
        "guardrails": [parse_guardrail(g) for g in args.guardrail],
    }
    if args.auto is not None:
        body["policy"] = {
            "promote": args.auto in ("promote", "both"),
            "rollback": args.auto in ("rollback", "both"),
        }
    created = client(args).request("POST", "/v1/experiments", body)
    print(
        f"created {created['name']} on {created['model']} ({created['mode']}): "
        + ", ".join(arm_text(a) for a in created["arms"])
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    experiments = client(args).request("GET", "/v1/experiments")["experiments"]
    if not experiments:
        print("no experiments")
        return 0
    rows: list[tuple[str, ...]] = [("NAME", "MODEL", "MODE", "STATUS", "ARMS")]
    for e in experiments:
        arms = ", ".join(arm_text(a) for a in e["arms"])
        rows.append((e["name"], e["model"], e["mode"], e["status"], arms))
    _table(rows)
    return 0


def run_show(args: argparse.Namespace) -> int:
    report = client(args).request("GET", f"/v1/experiments/{args.name}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['name']} on {report['model']} ({report['mode']}, {report['status']}), "
        f"alpha {report['alpha']:g}, metric {report['metric']}"
    )
    rows: list[tuple[str, ...]] = [
        ("ARM", "VARIANT", "EXPOSURES", "UNITS", "FEEDBACK", "ACCURACY [95%]", "MEAN OUTCOME [95%]")
    ]
    for a in report["arms"]:
        rows.append(
            (
                a["name"],
                variant_text(a),
                str(a["exposures"]),
                str(a["units"]),
                str(a["feedback"]),
                _estimate(a["accuracy"], a["accuracy_interval"]),
                _estimate(a["mean_outcome"], a["mean_outcome_interval"]),
            )
        )
    _table(rows)
    comparison = report["comparison"]
    for c in comparison["contrasts"]:
        if c["difference"] is None:
            print(f"{c['arm']} - {c['against']}: not enough feedback yet")
            continue
        cs = c["confidence_sequence"]
        print(
            f"{c['arm']} - {c['against']}: {_estimate(c['difference'], c.get('interval'))}; "
            f"fixed-horizon p {c['p_value']:.3g}; always-valid p "
            f"{_num(c['always_valid_p_value'])}, confidence sequence "
            f"{'-' if cs is None else f'[{cs[0]:+.4f}, {cs[1]:+.4f}]'}"
        )
    srm = comparison.get("sample_ratio")
    if srm:
        print(
            f"sample ratio: observed {srm['observed']}, expected "
            f"{[round(x, 1) for x in srm['expected']]}, p {srm['p_value']:.3g}"
            f"{' MISMATCH' if srm['mismatch'] else ''}"
        )
    rate = comparison.get("feedback_rate")
    if rate:
        shares = ", ".join("-" if r is None else f"{r:.1%}" for r in rate["rates"])
        print(
            f"feedback rate: {shares} of {rate['exposures']} exposures, p {rate['p_value']:.3g}"
            f"{' MISMATCH' if rate['mismatch'] else ''}"
        )
    for g in comparison.get("guardrails", []):
        cs = g["confidence_sequence"]
        print(
            f"guardrail {g['metric']} ({g['arm']}, margin {g['margin']:g}): "
            + (
                "not enough requests yet"
                if cs is None
                else f"difference {g['difference']:+.4f}, confidence sequence "
                f"[{cs[0]:+.4f}, {cs[1]:+.4f}]"
            )
            + (" BREACHED" if g["breached"] else "")
        )
    paired = comparison.get("paired")
    if paired:
        print(
            f"paired: {paired['pairs']} pairs, agreement {_num(paired['agreement'])}, "
            f"mean JS divergence {_num(paired['mean_divergence'])}, McNemar p "
            f"{paired['mcnemar_p_value']:.3g} on {paired['labelled_pairs']} labelled"
        )
    print(f"decision: {comparison['decision']['message']}")
    for action in report.get("actions", []):
        detail = json.dumps(action["detail"], sort_keys=True, separators=(",", ":"))
        print(f"{utc(action['at'])}  {action['action']} by {action['actor']}: {detail}")
    return 0


def run_ramp(args: argparse.Namespace) -> int:
    weights: dict[str, float] = {}
    for text in args.weight:
        arm, _, value = text.partition("=")
        try:
            weights[arm] = float(value)
        except ValueError:
            raise CommandError(f"--weight {text!r}: write ARM=WEIGHT, e.g. b=1", 2) from None
    ramped = client(args).request("PATCH", f"/v1/experiments/{args.name}", {"weights": weights})
    print(
        f"ramped {ramped['name']} (period {ramped['period']}): "
        + ", ".join(f"{a['name']}={a['weight']:g}" for a in ramped["arms"])
    )
    return 0


def run_promote(args: argparse.Namespace) -> int:
    done = client(args).request("POST", f"/v1/experiments/{args.name}/promote")
    promoted = done["promoted"]
    print(
        f"promoted {variant_text(promoted)} (arm {promoted['arm']} of {done['name']}): the "
        f"default of {promoted['model']}; {done['name']} is {done['status']}"
    )
    return 0


def run_stop(args: argparse.Namespace) -> int:
    stopped = client(args).request("POST", f"/v1/experiments/{args.name}/stop")
    print(f"stopped {stopped['name']}")
    return 0


def _estimate(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "-"
    if interval is None:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
