"""``headstart export``: export a fine-tuned checkpoint to ONNX with its manifest."""

from __future__ import annotations

import argparse

from models import defaults
from scripts.commands import _training as common
from scripts.commands._options import add_repository_option


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a fine-tuned checkpoint into the model repository",
        description=(
            "Export to <repository>/<name>/<variant>/{model.onnx, manifest.json}; the variant is "
            "'baseline' for method none, else 'pretrained'. The graph must pass onnx.checker "
            "and agree with torch on 64 test images, or nothing is written."
        ),
    )
    common.add_checkpoint_options(parser, reads="finetune")
    parser.add_argument(
        "--name",
        default=defaults.NAME,
        help=f"model name in the repository, no '-' (default: {defaults.NAME})",
    )
    add_repository_option(parser)
    parser.set_defaults(func=run)


@common.guarded
def run(args: argparse.Namespace) -> int:
    name = common.check_name(args.name)
    repository = args.model_repository or common.default_repository()

    from models.experiment import load_data
    from models.modes import check_mode
    from models.stages import export_trained, open_stage, report_of

    checkpoint, config = open_stage(args.checkpoint, "cpu", "finetuned")
    target, manifest, parity = export_trained(
        checkpoint.model,
        config,
        load_data(config),
        report_of(checkpoint),
        repository=repository,
        name=name,
        finetune=checkpoint.info.get("finetune"),
        mode=check_mode(checkpoint.info.get("finetune", {}).get("mode", "supervised")),
    )
    print(
        f"exported {target}: {manifest.variant} ({manifest.pretraining.method}), test accuracy "
        f"{manifest.test_metrics.accuracy:.4f}, ONNX Runtime vs torch max |dp| "
        f"{parity.probabilities:.2e} on {parity.num_images} test images"
    )
    return 0
