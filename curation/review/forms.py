"""The browser queue's inputs: the filter (GET) and a decision (POST)."""
from django import forms

from curation.labels import CLASSES, NUM_CLASSES
from curation.models import Dataset, Image
from curation.review.services import ACTIONS, SKIP

_FLAGGED = {"yes": True, "no": False}
# Longest time a card may count as having been looked at (a card left open over lunch is not a slow decision).
MAX_SECONDS_SPENT = 3600


class ReviewFilterForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), to_field_name="name", required=False,
                                     empty_label=None)
    label = forms.TypedChoiceField(choices=[("", "any label"), *enumerate(CLASSES)], coerce=int, empty_value=None,
                                   required=False)
    status = forms.ChoiceField(choices=Image.Status.choices, required=False)
    flagged = forms.ChoiceField(choices=[("", "flagged or not"), ("yes", "flagged"), ("no", "not flagged")],
                                required=False)
    min_suspicion = forms.FloatField(required=False, min_value=0, label="min suspicion",
                                     widget=forms.NumberInput(attrs={"step": "0.05"}))

    def queue_filters(self):
        """The cleaned filter as the review services take it (label code, status, flagged, min_suspicion)."""
        data = self.cleaned_data
        return {
            "label": data.get("label"),
            "status": data.get("status") or Image.Status.UNREVIEWED,
            "flagged": _FLAGGED.get(data.get("flagged") or ""),
            "min_suspicion": data.get("min_suspicion"),
        }

    def query(self):
        """The filter as a query string, to carry it through decisions and links."""
        return {name: value for name, value in self.data.items() if name in self.fields and value not in ("", None)}


class DecisionForm(forms.Form):
    image_id = forms.IntegerField()
    version = forms.IntegerField(required=False)
    # "confirm", "exclude", "skip" or "relabel:<code>": one submit button per decision.
    decision = forms.CharField()
    shown_at = forms.FloatField(required=False, help_text="Server time (epoch seconds) the card was rendered.")

    def clean_decision(self):
        value = self.cleaned_data["decision"]
        action, _, label = value.partition(":")
        if action not in ACTIONS:
            raise forms.ValidationError(f"unknown decision {value!r}")
        if action != SKIP and self.data.get("version") in (None, ""):
            raise forms.ValidationError(f"{action} needs the card's version")
        if action == "relabel":
            if not label.isdigit() or not 0 <= int(label) < NUM_CLASSES:
                raise forms.ValidationError(f"relabel needs a class 0-{NUM_CLASSES - 1}")
            return action, int(label)
        return action, None

    def seconds_spent(self, now):
        shown_at = self.cleaned_data.get("shown_at")
        if shown_at is None:
            return None
        return min(max(now - shown_at, 0.0), MAX_SECONDS_SPENT)
