"""``headstart report`` end to end on 300 real digits with the tiny budget.

Every figure and table must be produced, the HTML must stand alone, and the numbers in the
tables must be the ones in ``results.csv`` (recomputed here with scipy's own tests).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import io
import re
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from models.report.drawing import FIGURES
from models.report.semi import EFFECTS
from models.report.transfer import ARMS
from models.sources import load_dataset
from scripts.cli import main
from tests.models.helpers import tiny_digits, write_idx

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Report:
    out: Path
    dataset: str
    stdout: str


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("report")
    # Shifted a pixel right: the transfer panel pre-trains on scikit-learn's digits with their
    # labels, which it refuses to do for a copy of the target's own images.
    digits = tiny_digits(30)
    shifted = dataclasses.replace(digits, images=np.roll(digits.images, 1, axis=-1))
    originals = {image.tobytes() for image in load_dataset("digits").images}
    assert not any(image.tobytes() in originals for image in shifted.images)
    write_idx(root / "idx", shifted)
    dataset = f"idx:{root / 'idx'}"
    out = root / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["report", "--budget", "tiny", "--dataset", dataset, "--out", str(out)])
    assert code == 0
    return Report(out, dataset, stdout.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def md_table(markdown: str, name: str) -> list[dict[str, str]]:
    """The rows of the markdown table marked ``<!-- table:name -->``."""
    block = markdown.split(f"<!-- table:{name} -->", 1)[1].strip().splitlines()
    start = next(i for i, line in enumerate(block) if line.startswith("|"))
    lines: list[str] = []
    for line in block[start:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True))
        for line in lines[2:]
    ]


def accuracies(rows: list[dict[str, str]], **where: str) -> list[float]:
    chosen = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return [float(r["test_accuracy"]) for r in sorted(chosen, key=lambda r: int(r["seed"]))]


def expected_cells(treated: list[float], control: list[float]) -> dict[str, str]:
    """What a gain row must say, computed independently from the CSV with scipy."""
    diffs = [a - b for a, b in zip(treated, control, strict=True)]
    mean = statistics.fmean(diffs)
    sem = statistics.stdev(diffs) / len(diffs) ** 0.5
    cells = {
        "Pre-trained acc %": f"{100 * statistics.fmean(treated):.2f}",
        "Baseline acc %": f"{100 * statistics.fmean(control):.2f}",
        "Gain (pp)": f"{100 * mean:+.2f}",
        "Seeds": str(len(diffs)),
    }
    if sem > 0:
        low, high = stats.t.interval(0.95, len(diffs) - 1, loc=mean, scale=sem)
        p = float(stats.ttest_rel(treated, control).pvalue)
        cells["95% CI (pp)"] = f"[{100 * low:+.2f}, {100 * high:+.2f}]"
        cells["p (paired t)"] = "<0.001" if p < 0.001 else f"{p:.3f}"
    return cells


def test_every_figure_is_a_png_inlined_in_a_self_contained_page(report: Report) -> None:
    page = (report.out / "report.html").read_text()
    markdown = (report.out / "report.md").read_text()
    for name in FIGURES:
        data = (report.out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5_000, f"{name} looks empty"
        assert f"data:image/png;base64,{base64.b64encode(data).decode()}" in page, name
        assert f"]({name})" in markdown, name
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external asset"
    assert "<script" not in page
    assert "<link" not in page


def test_every_table_is_in_both_documents(report: Report) -> None:
    page = (report.out / "report.html").read_text()
    markdown = (report.out / "report.md").read_text()
    for name in ("labels", "depth", "optimizer", "historical", "transfer", "semi", "literature"):
        assert md_table(markdown, name), name
        assert f'data-table="{name}"' in page, name
    for title in ("Conclusion", "Literature (others' results on full MNIST)"):
        assert title in markdown
    assert "Hinton, Osindero & Teh 2006" in markdown


def test_the_gain_tables_hold_the_numbers_in_results_csv(report: Report) -> None:
    rows = read_csv(report.out / "results.csv")
    markdown = (report.out / "report.md").read_text()

    def check(row: dict[str, str], **where: str) -> int:
        """Assert one table row's cells against its runs; return how many cells were checked."""
        treated = accuracies(rows, method=row["Pre-training"], **where)
        control = accuracies(rows, method="none", **where)
        cells = expected_cells(treated, control)
        for column, value in cells.items():
            assert row[column] == value, (row, column)
        return len(cells)

    checked = 0
    main = {"dataset": report.dataset, "pretrain_dataset": "", "augment": "False"}
    for row in md_table(markdown, "labels"):
        where = main | {"arch": row["Arch"], "depth": row["Hidden/conv layers"]}
        where |= {"optimizer": "adam", "labels_per_class": row["Labels/class"], "init": "sound"}
        checked += check(row, **where)
    for row in md_table(markdown, "depth"):
        where = main | {"arch": "mlp", "depth": row["Hidden layers"], "optimizer": "adam"}
        where |= {"labels_per_class": row["Labels/class"], "init": "sound"}
        checked += check(row, **where)
    for row in md_table(markdown, "optimizer"):
        where = main | {"arch": "mlp", "depth": "2", "optimizer": row["Optimiser"]}
        where |= {"labels_per_class": row["Labels/class"], "init": "sound"}
        checked += check(row, **where)
    for row in md_table(markdown, "historical"):
        init = "naive" if row["Init"] == "naive" else "sound"
        where = main | {"arch": "mlp", "depth": row["Hidden layers"], "optimizer": row["Optimiser"]}
        where |= {"labels_per_class": row["Labels/class"], "init": init}
        checked += check(row, **where)
    assert checked >= 4 * (8 + 4 + 5 + 2)


def test_the_transfer_panel_holds_the_numbers_in_results_csv(report: Report) -> None:
    """Each arm of each setting against the random start of the same target and seeds."""
    rows = read_csv(report.out / "results.csv")
    table = md_table((report.out / "report.md").read_text(), "transfer")
    targets = {r["Target"] for r in table}
    assert targets == {f"{report.dataset}:5-9", report.dataset}
    arms = {r["Pre-training"] for r in table}
    assert arms == {ARMS[1].name, ARMS[2].name, ARMS[3].name}
    for row in table:
        source = row["Source"].split(" (")[0]
        assert source == (f"{report.dataset}:0-4" if row["Target"] != report.dataset else "digits")
        arm = next(a for a in ARMS if a.name == row["Pre-training"])
        method = "supervised" if arm.supervised else "cae"
        where = {"arch": "cnn", "dataset": row["Target"], "labels_per_class": row["Labels/class"]}
        where |= {"augment": "False"}  # the 2 x 2 panel's runs of the same labels are not it
        treated = accuracies(
            rows, method=method, pretrain_dataset=source if arm.from_source else "", **where
        )
        control = accuracies(rows, method="none", **where)
        assert len(treated) == len(control) == 2
        for column, value in expected_cells(treated, control).items():
            column = "Random start acc %" if column == "Baseline acc %" else column
            assert row[column] == value, (row, column)
        only_pretrained, only_random = (
            int(v) for v in row["Only pre-trained right / only random right"].split(" / ")
        )
        p = (
            stats.binomtest(only_pretrained, only_pretrained + only_random).pvalue
            if only_pretrained + only_random
            else 1.0
        )
        assert row["McNemar p (seed 0)"] == ("<0.001" if p < 0.001 else f"{p:.3f}")
    transfer = [r for r in rows if "transfer" in r["studies"].split(";")]
    assert {r["method"] for r in transfer} == {"none", "cae", "supervised"}


def test_the_semi_panel_holds_the_paired_differences_of_its_cells_runs(report: Report) -> None:
    """Each effect of the 2 x 2 panel against its control cell, from the runs in results.csv."""
    rows = read_csv(report.out / "results.csv")
    markdown = (report.out / "report.md").read_text()
    table = md_table(markdown, "semi")
    panel = [r for r in rows if "semi" in r["studies"].split(";")]
    assert {(r["method"], r["mode"], r["augment"]) for r in panel} == {
        ("none", "supervised", "True"),
        ("contrastive", "supervised", "True"),
        ("none", "fixmatch", "True"),
        ("contrastive", "fixmatch", "True"),
    }
    assert {r["arch"] for r in panel} == {"cnn"}
    assert all(r["studies"] == "semi" for r in panel), "no other study uses an augmented run"
    assert {r["augment"] for r in rows if r not in panel} == {"False"}
    assert {r["Effect"] for r in table} == {e.name for e in EFFECTS}
    assert len(table) == 4 * len({r["labels_per_class"] for r in panel}) == 8

    def cell(name: str, k: str) -> list[float]:
        method, mode = name.split(" + ")
        return accuracies(panel, method=method, mode=mode, labels_per_class=k)

    for row in table:
        treated, control = (
            cell(row["Cell"], row["Labels/class"]),
            cell(row["Against"], row["Labels/class"]),
        )
        assert len(treated) == len(control) == 2
        for column, value in expected_cells(treated, control).items():
            column = {"Pre-trained acc %": "Cell acc %", "Baseline acc %": "Against acc %"}.get(
                column, column
            )
            assert row[column] == value, (row, column)
        assert row["Only cell right / only against right"] != "n/a"  # seed 0 kept its outcomes
    effects = {(r["Effect"], r["Cell"], r["Against"]) for r in table}
    assert effects == {
        ("pre-training alone", "contrastive + supervised", "none + supervised"),
        ("semi-supervised alone", "none + fixmatch", "none + supervised"),
        ("both", "contrastive + fixmatch", "none + supervised"),
        ("pre-training on top of semi-supervised", "contrastive + fixmatch", "none + fixmatch"),
    }
    assert "2 x 2 panel (CNN, augmented recipe): contrastive pre-training alone" in markdown
    assert "which use of the unlabeled images gave more on its own" in markdown


def test_results_csv_has_one_row_per_run_and_says_where_each_is_used(report: Report) -> None:
    rows = read_csv(report.out / "results.csv")
    names = [r["run"] for r in rows]
    assert len(names) == len(set(names))
    assert all(r["studies"] for r in rows)
    assert {r["seed"] for r in rows} == {"0", "1"}
    assert {r["method"] for r in rows} == {"none", "rbm", "dae", "cae", "contrastive", "supervised"}
    assert {r["optimizer"] for r in rows} == {"sgd", "momentum", "adagrad", "rmsprop", "adam"}
    assert {r["init"] for r in rows} == {"sound", "naive"}
    assert {r["mode"] for r in rows} == {"supervised", "fixmatch"}
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    assert f"{len(rows)} runs trained, 0 from the cache" in report.stdout


def test_the_main_sweep_can_pre_train_on_another_data_set(report: Report, tmp_path: Path) -> None:
    out = tmp_path / "from-digits"
    shutil.copytree(report.out / "cache", out / "cache")  # baselines and the panel are reused
    args = ["report", "--budget", "tiny", "--dataset", report.dataset, "--out", str(out)]
    assert main([*args, "--pretrain-dataset", "digits"]) == 0
    rows = read_csv(out / "results.csv")
    main_runs = [r for r in rows if set(r["studies"].split(";")) - {"transfer", "semi"}]
    assert {r["pretrain_dataset"] for r in main_runs if r["method"] != "none"} == {"digits"}
    assert {r["pretrain_dataset"] for r in main_runs if r["method"] == "none"} == {""}
    # The 2 x 2 panel pre-trains on the pool its FixMatch cells learn from, whatever the sweep's.
    assert {r["pretrain_dataset"] for r in rows if r["studies"] == "semi"} == {""}
    markdown = (out / "report.md").read_text()
    assert "Pre-training sees digits's images without labels" in markdown
    assert md_table(markdown, "labels")
    for name in FIGURES:
        assert (out / name).is_file(), name


def test_an_interrupted_report_resumes_from_its_cache(
    report: Report, capsys: pytest.CaptureFixture[str]
) -> None:
    before = read_csv(report.out / "results.csv")
    finished = sorted((report.out / "cache").glob("*.json"))
    victim = next(p for p in finished if not p.name.startswith("recon-"))
    victim.unlink()  # as if the sweep had stopped before this run finished
    args = ["report", "--budget", "tiny", "--dataset", report.dataset, "--out", str(report.out)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"1 runs trained, {len(before) - 1} from the cache" in out
    after = read_csv(report.out / "results.csv")
    assert [r["run"] for r in after] == [r["run"] for r in before]


def _timeless_rows(out: Path) -> list[dict[str, str]]:
    """results.csv without wall-clock columns (the only thing a rerun may change)."""
    return [
        {k: v for k, v in row.items() if "seconds" not in k and k != "history"}
        for row in read_csv(out / "results.csv")
    ]


def _comparable_markdown(out: Path) -> str:
    """report.md less what says how this invocation ran: its --out, how many runs it found in
    the cache, wall-clock times and dates."""
    text = (out / "report.md").read_text().replace(str(out), "<out>")
    text = re.sub(r"\d+ trained now, \d+ from the cache", "<provenance>", text)
    text = re.sub(r"\d+(\.\d+)?\s*(min|minutes|s|seconds|h|hours)\b", "<time>", text)
    return re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?( UTC|Z|\+00:00)?", "<when>", text)


def _same_report(out: Path, reference: Report) -> None:
    assert _timeless_rows(out) == _timeless_rows(reference.out)
    assert _comparable_markdown(out) == _comparable_markdown(reference.out)
    for name in FIGURES:
        assert (out / name).is_file(), name


def test_two_jobs_write_the_report_one_process_writes(
    report: Report, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "jobs"
    args = ["report", "--budget", "tiny", "--dataset", report.dataset, "--out", str(out)]
    assert main([*args, "--jobs", "2"]) == 0
    assert "0 runs trained" in capsys.readouterr().out  # the shards trained them all
    _same_report(out, report)


def test_shards_split_the_sweep_and_a_plain_run_assembles_it(
    report: Report, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    args = ["report", "--budget", "tiny", "--dataset", report.dataset, "--out", str(out)]
    cache = out / "cache"
    seen: list[set[str]] = []
    for shard in ("1/2", "0/2"):
        before = {p.name for p in cache.glob("*.json")} if cache.is_dir() else set()
        assert main([*args, "--shard", shard]) == 0
        assert not (out / "report.md").exists()
        seen.append({p.name for p in cache.glob("*.json")} - before)
    assert seen[0]
    assert seen[1]
    assert not seen[0] & seen[1]
    runs = len(read_csv(report.out / "results.csv"))
    assert "0 from the cache" in capsys.readouterr().out
    assert main(args) == 0
    assert f"0 runs trained, {runs} from the cache" in capsys.readouterr().out
    _same_report(out, report)


def test_help_offers_quick_and_full_and_says_how_long_each_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{quick,full}" in text
    assert "tiny" not in text
    assert "quick: about 25 to 45 minutes" in text
    assert "full: about 2 hours on 2 CPU cores with --jobs 2" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "1"], "--seeds must be at least 2"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--shard", "2/2"], "shard 2/2: the index must lie in 0..count-1"),
        (["--shard", "half"], "--shard 'half': expected INDEX/COUNT"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--jobs", "2", "--shard", "0/2"], "--jobs and --shard exclude each other"),
    ],
)
def test_bad_options_get_one_clear_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", "--budget", "tiny", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("headstart: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
