from rest_framework import serializers

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
