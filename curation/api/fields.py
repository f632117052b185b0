import math

from rest_framework import serializers

from curation.selectors import name_has_control_characters
from training.labels import CLASSES, UnknownLabel, parse_label


class LabelField(serializers.ChoiceField):
    """An emotion class: the canonical name out; in, the canonical name or an accepted spelling ('happiness',
    'angry', ...), stored as its code."""

    def __init__(self, **kwargs):
        super().__init__(choices=list(CLASSES), **kwargs)

    def to_internal_value(self, data):
        try:
            return parse_label(data)
        except UnknownLabel as exc:
            raise serializers.ValidationError(str(exc), code="invalid_label") from None

    def to_representation(self, value):
        return CLASSES[int(value)]


class FiniteFloatField(serializers.FloatField):
    """A number from a user: finite, or refused with a message naming it ("nan", "inf" and "1e999" parse as
    floats, pass every range check, and a NaN stored once breaks every JSON answer that later carries it)."""

    default_error_messages = {**serializers.FloatField.default_error_messages,
                              "not_finite": "Ensure this value is a finite number, not {value!r}."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("not_finite", value=str(data))
        return value


# The largest value a PostgreSQL integer column (Django's IntegerField, PositiveIntegerField) holds.
MAX_INT32 = 2 ** 31 - 1


class DatasetNameField(serializers.CharField):
    """A dataset's name as a filter or a body field: a name with control characters is refused (400) before it
    reaches a query (PostgreSQL refuses NUL in text; no dataset name has any control character)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if name_has_control_characters(value):
            raise serializers.ValidationError(f"{value!r} is no dataset name: names have no control characters.",
                                              code="invalid")
        return value
