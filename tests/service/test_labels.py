"""Feedback labels named by class or by index, checked against the model's classes."""

from __future__ import annotations

import pytest

from service.experiments.labels import InvalidLabel, normalise

CLASSES = ["cat", "dog", "bird"]


def test_an_index_names_the_class_at_it_and_a_name_is_kept() -> None:
    assert normalise(1, CLASSES, "pets") == "dog"
    assert normalise("bird", CLASSES, "pets") == "bird"


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (3, "label 3 is not a class index of model 'pets' (0 to 2)"),
        (-1, "label -1 is not a class index of model 'pets' (0 to 2)"),
        (
            "1",
            (
                "label '1' is not a class of model 'pets': 'cat', 'dog', 'bird', "
                "or a class index written as a number"
            ),
        ),
    ],
)
def test_a_label_that_names_no_class_says_which_would(label: int | str, message: str) -> None:
    with pytest.raises(InvalidLabel) as caught:
        normalise(label, CLASSES, "pets")
    assert str(caught.value) == message


def test_a_long_list_of_classes_is_cut_short_in_the_message() -> None:
    many = [f"c{i}" for i in range(100)]
    with pytest.raises(InvalidLabel, match=r"'c11' and 88 more, or a class index") as caught:
        normalise("x" * 500, many, "big")
    assert len(str(caught.value)) < 300
