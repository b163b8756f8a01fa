from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.manifest import MNIST_FRAMING, Manifest, ManifestError, parse_manifest, sha256_file
from tests.builders import manifest_for

SHA = "0" * 64


def _raw(**changes: object) -> dict[str, object]:
    raw = json.loads(manifest_for("tiny", "pretrained", SHA).to_json())
    raw.update(changes)
    return raw


def test_round_trip_keeps_every_field() -> None:
    manifest = manifest_for("tiny", "pretrained", SHA)
    assert parse_manifest(manifest.to_json()) == manifest


def test_write_then_read(tmp_path: Path) -> None:
    manifest = manifest_for("tiny", "baseline", SHA)
    path = manifest.write(tmp_path)
    assert path.name == "manifest.json"
    assert parse_manifest(path.read_text()) == manifest


def test_bad_json_names_line_and_column() -> None:
    with pytest.raises(ManifestError, match=r"not valid JSON .* line 1 column"):
        parse_manifest('{"schema_version": 1,')


def test_non_object_is_rejected() -> None:
    with pytest.raises(ManifestError, match="not a JSON object"):
        parse_manifest("[1, 2]")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_schema_version(version: object) -> None:
    with pytest.raises(ManifestError, match=r"schema_version .* is not supported"):
        parse_manifest(json.dumps(_raw(schema_version=version)))


def test_missing_field_is_named() -> None:
    raw = _raw()
    del raw["class_names"]
    with pytest.raises(ManifestError, match=r"class_names: Field required"):
        parse_manifest(json.dumps(raw))


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"surprise: Extra inputs"):
        parse_manifest(json.dumps(_raw(surprise=1)))


def test_bad_hash_format() -> None:
    with pytest.raises(ManifestError, match="onnx_sha256"):
        parse_manifest(json.dumps(_raw(onnx_sha256="abc")))


def test_nested_field_path_is_named() -> None:
    raw = _raw()
    raw["input"] = {"channels": 2, "height": 28, "width": 28}
    with pytest.raises(ManifestError, match=r"input\.channels"):
        parse_manifest(json.dumps(raw))


def test_variant_and_method_must_agree() -> None:
    raw = _raw(variant="baseline")
    with pytest.raises(ManifestError, match="does not fit pre-training method 'dae'"):
        parse_manifest(json.dumps(raw))


def test_metrics_must_match_classes() -> None:
    raw = _raw()
    raw["test_metrics"]["per_class_accuracy"] = [1.0]  # type: ignore[index]
    with pytest.raises(ManifestError, match="per_class_accuracy"):
        parse_manifest(json.dumps(raw))


def test_model_name_cannot_hold_a_hyphen() -> None:
    # The V2 protocol names variants "<model>-<variant>", so a hyphen would be ambiguous.
    with pytest.raises(ManifestError, match="name"):
        parse_manifest(json.dumps(_raw(name="my-model")))


def test_manifest_is_frozen() -> None:
    manifest = manifest_for("tiny", "pretrained", SHA)
    with pytest.raises(ValueError, match="frozen"):
        manifest.name = "other"  # type: ignore[misc]


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(path, chunk_size=1) == expected


def test_schema_is_exportable() -> None:
    schema = Manifest.model_json_schema()
    assert "onnx_sha256" in schema["required"]


def test_a_manifest_without_framing_parses_as_not_framed() -> None:
    raw = _raw()
    spec = dict(raw["input"])  # type: ignore[call-overload]
    del spec["framing"]  # as every manifest written before the field
    assert parse_manifest(json.dumps({**raw, "input": spec})).input.framing is None


def test_framing_is_recorded_and_must_fit_the_input() -> None:
    raw = _raw()
    spec = dict(raw["input"])  # type: ignore[call-overload]
    spec["framing"] = {"method": "ink_box_mass_centre", "box": 20}
    assert parse_manifest(json.dumps({**raw, "input": spec})).input.framing == MNIST_FRAMING
    spec["framing"] = {"box": 40}
    with pytest.raises(ManifestError, match=r"framing\.box 40 does not fit the 28x28 input"):
        parse_manifest(json.dumps({**raw, "input": spec}))
