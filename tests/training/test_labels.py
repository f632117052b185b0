import pytest

from training.labels import (
    CLASSES,
    UnknownLabel,
    affectnet_code,
    fer2013_code,
    parse_label,
)


def test_canonical_order_is_affectnet_code_order():
    assert CLASSES == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


@pytest.mark.parametrize(
    "spelling, code",
    [("happiness", 1), ("Happy", 1), ("SADNESS", 2), ("surprised", 3), ("fearful", 4), ("disgusted", 5),
     ("angry", 6), ("Anger", 6), (" contempt ", 7), ("neutral", 0)],
)
def test_accepted_spellings(spelling, code):
    assert parse_label(spelling) == code


def test_unknown_label_and_bare_numbers_are_refused():
    with pytest.raises(UnknownLabel, match="unknown label 'joy'"):
        parse_label("joy")
    with pytest.raises(UnknownLabel):
        parse_label("3")  # a number means different classes in different datasets


def test_affectnet_codes_8_9_10_are_not_emotions():
    assert affectnet_code("6") == 6 and affectnet_code(7.0) == 7
    assert [affectnet_code(c) for c in (8, 9, 10)] == [None, None, None]
    with pytest.raises(UnknownLabel):
        affectnet_code(11)


def test_fer2013_order_is_mapped_by_name():
    # FER2013: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
    assert [CLASSES[fer2013_code(i)] for i in range(7)] == ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    with pytest.raises(UnknownLabel):
        fer2013_code(7)
