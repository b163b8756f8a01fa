"""The pages' examples tool: reading the parts, the shown form, and the shape check."""

from __future__ import annotations

import json
import subprocess

from benchmarks.readme_examples import (
    MORE,
    examples,
    parse_shown,
    quickstart,
    render,
    shape_problems,
    updated,
)

CLASSES = [str(c) for c in range(10)]
TEXT = """# title

## With curl

```sh
make-digits
# [0 2]
```

```sh
curl -s one \\
  'localhost:8000/x'
# {"a":1}

curl -s two
```

## Next

```sh
not-an-example
# ignored
```

## Open Inference Protocol (V2)

```python
print(1)
# 1
```
"""


def test_examples_are_the_parts_commands_with_their_shown_answers() -> None:
    found = examples(TEXT)
    assert [(e.command, e.shown, e.line) for e in found] == [
        ("make-digits", "[0 2]", 6),
        ("curl -s one 'localhost:8000/x'", '{"a":1}', 11),
        ("curl -s two", "", 15),
        ("print(1)", "1", 28),
    ]
    assert found[-1].language == "python"


def test_updated_replaces_each_shown_answer_and_nothing_else() -> None:
    def done(stdout: str) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 0, stdout, "")

    found = examples(TEXT)
    got = [done("[4 6]"), done('{"b": [1, 2, 3, 4, 5]}'), done('{"c": true}'), done("2")]
    text = updated(TEXT, list(zip(found, got, strict=True)))
    assert examples(text)[0].shown == "[4 6]"
    assert examples(text)[1].shown == '{"b":[1,2,3,…]}'
    assert examples(text)[2].shown == '{"c":true}'
    assert examples(text)[3].shown == "2"
    assert (
        text.replace("[4 6]", "[0 2]")
        .replace('{"b":[1,2,3,…]}', '{"a":1}')
        .replace('# {"c":true}\n', "")
        .replace("# 2\n", "# 1\n")
        == TEXT
    )


def test_render_cuts_long_lists_and_wraps_outside_strings() -> None:
    notes = {f"note{i}": "a, b, c" for i in range(20)}
    answer = {"vector": list(range(100)), **notes}
    lines = render(json.dumps(answer))
    assert len(lines) > 2
    assert all(len(line) <= 100 for line in lines)
    assert lines[0].startswith("# ")
    assert all(line.startswith("#   ") for line in lines[1:])
    shown = " ".join(line[1:].strip() for line in lines)
    assert shown.startswith('{"vector":[0,1,2,…]')
    value = parse_shown(shown)
    assert value["vector"] == [0, 1, 2, MORE]
    assert {k: v for k, v in value.items() if k != "vector"} == notes


def test_shape_problems_hold_what_any_build_shares() -> None:
    shown = parse_shown(
        '{"model":"mnist","predictions":[{"label":"7","probability":0.9,"blank":false}],'
        '"vector":[0.1,0.2,0.3,…],"size":4}'
    )
    same = {
        "model": "mnist",
        "predictions": [{"label": "2", "probability": 1, "blank": False}],
        "vector": [0.5, 0.5, 0.5, 0.5],
        "size": 4,
    }
    assert shape_problems(same, shown, CLASSES) == []
    wrong = {
        **same,
        "model": "other",
        "predictions": [{"label": "cat", "probability": "high", "blank": True}],
        "vector": [0.5, 0.5, 0.5],
        "size": 5,
    }
    assert shape_problems(wrong, shown, CLASSES) == [
        "$.model: 'other', shown 'mnist'",
        "$.predictions[0].label: 'cat' is not a class of the model",
        "$.predictions[0].probability: 'high', shown the number 0.9",
        "$.predictions[0].blank: True, shown False",
        "$.vector: 3 items, shown more than 3",
        "$.size: 5, shown 4",
    ]
    assert shape_problems({"model": "mnist"}, shown, CLASSES) == [
        "$: keys ['model'], shown ['model', 'predictions', 'size', 'vector']"
    ]
    assert shape_problems({**same, "predictions": []}, shown, CLASSES) == [
        "$.predictions: 0 items, shown 1"
    ]


def test_quickstart_is_the_curl_of_its_part_in_list_items() -> None:
    text = (
        "# t\n\n## Quickstart\n\n1. Serve:\n\n   ```sh\n   make serve\n   ```\n\n"
        "2. Ask:\n\n   ```sh\n   curl -s 'localhost:8000/x'\n   # {\"a\":1}\n   ```\n\n"
        "## Next\n\n```sh\ncurl -s other\n```\n"
    )
    (found,) = quickstart(text)
    assert (found.command, found.shown, found.line) == ("curl -s 'localhost:8000/x'", '{"a":1}', 14)
    done = subprocess.CompletedProcess([], 0, '{"a": 2}', "")
    assert '\n   # {"a":2}\n' in updated(text, [(found, done)]), "the indentation stays"


def test_times_are_elided_and_match_any_number() -> None:
    lines = render(json.dumps({"images": 4, "latency_ms": {"pretrained": 5.04, "baseline": 0.7}}))
    shown = " ".join(line[1:].strip() for line in lines)
    assert shown == '{"images":4,"latency_ms":{"pretrained":…,"baseline":…}}'
    value = parse_shown(shown)
    assert (
        shape_problems({"images": 4, "latency_ms": {"pretrained": 1, "baseline": 2.5}}, value, [])
        == []
    )
    assert shape_problems(
        {"images": 4, "latency_ms": {"pretrained": "slow", "baseline": 2.5}}, value, []
    ) == ["$.latency_ms.pretrained: 'slow', shown an elided number"]
