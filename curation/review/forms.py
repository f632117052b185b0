"""The browser queue's inputs: the filter (GET) and a decision (POST)."""
from django import forms

from curation.models import Dataset, Image, ImageSelection, Run
from curation.review.services import ACTIONS, SKIP
from curation.selectors import STATUS_ANY, STATUS_KEPT, DatasetNotFound, dataset_resolve
from training.labels import CLASSES, CODE, NUM_CLASSES, UnknownLabel, parse_label

_FLAGGED = {"yes": True, "no": False}
_NUMBER = {"invalid": "enter a number from 0 to 1, such as 0.5"}
# Longest time a card may count as having been looked at (a card left open over lunch is not a slow decision).
MAX_SECONDS_SPENT = 3600
# The grid's last page number: beyond it an offset would overflow the database's integers (and no dataset has
# that many pages of thumbnails). Image ids and versions fit the columns that hold them.
MAX_PAGE = 1_000_000
MAX_ID = 2 ** 63 - 1
MAX_VERSION = 2 ** 31 - 1


def page_number(value):
    """A page parameter as the user sent it (any text) -> a page from 1 to MAX_PAGE; anything else is page 1."""
    value = str(value or "").strip()
    if not (value.isascii() and value.isdigit()):  # "²".isdigit() is true, and int("²") raises
        return 1
    return min(max(int(value), 1), MAX_PAGE) if len(value) <= 12 else MAX_PAGE


def _ascii_number(value, maximum):
    """"123" -> 123; None for anything but ASCII digits, or above maximum."""
    if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) > maximum:
        return None
    return int(value)


class DatasetChoiceField(forms.ModelChoiceField):
    """A dataset by name, resolved by dataset_resolve: an unknown name (or one with control characters, refused
    before any query is made) is an invalid choice in the resolver's words, naming the known datasets."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return dataset_resolve(name=str(value))
        except DatasetNotFound as exc:
            raise forms.ValidationError(str(exc), code="invalid_choice") from None


class LabelFilterField(forms.TypedChoiceField):
    """A class by name ("happy"; the spellings parse_label accepts), or by its code 0-7 for links made before the
    filter took names; cleaned to the code."""

    def __init__(self, *, empty_label="any label", **kwargs):
        choices = [(name, name) for name in CLASSES]
        super().__init__(choices=[("", empty_label), *choices] if empty_label else choices, coerce=CODE.get,
                         empty_value=None, **kwargs)

    def to_python(self, value):
        value = super().to_python(value).strip()
        if value in self.empty_values:
            return value
        if value.isascii() and value.isdigit() and len(value) <= 2 and int(value) < NUM_CLASSES:
            return CLASSES[int(value)]
        try:
            return CLASSES[parse_label(value)]
        except UnknownLabel:
            raise forms.ValidationError(f"unknown label {value[:40]!r}: use a name ({', '.join(CLASSES)}) or its "
                                        f"number 0-{NUM_CLASSES - 1}", code="invalid_choice") from None


class ReviewFilterForm(forms.Form):
    dataset = DatasetChoiceField(queryset=Dataset.objects.order_by("name"), to_field_name="name", required=False,
                                     empty_label=None)
    split = forms.ChoiceField(choices=[("", "any split"), *Image.Split.choices], required=False)
    label = LabelFilterField(required=False)
    original_label = LabelFilterField(required=False, label="Given label", empty_label="any given label")
    status = forms.ChoiceField(choices=[*Image.Status.choices, (STATUS_KEPT, "any but excluded"),
                                        (STATUS_ANY, "any status")], required=False)
    signal = forms.ChoiceField(choices=[("", "any signal"), ("ssim", "SSIM-flagged"),
                                        ("classifier", "classifier-flagged"), ("both", "both flags"),
                                        ("either", "either flag"),
                                        ("datalab_label", "neighbours disagree (Datalab)"),
                                        ("datalab_outlier", "outlier (Datalab)"),
                                        ("datalab_duplicate", "near-duplicate (Datalab)"),
                                        ("duplicate", "near-duplicate (find_duplicates)"),
                                        ("test_leak", "test image leaking (find_duplicates)")], required=False)
    flagged = forms.ChoiceField(choices=[("", "flagged or not"), ("yes", "flagged"), ("no", "not flagged")],
                                required=False)
    min_suspicion = forms.FloatField(required=False, label="suspicion from", error_messages=_NUMBER,
                                     widget=forms.NumberInput(attrs={"step": "0.05", "size": 4}))
    max_suspicion = forms.FloatField(required=False, label="to", error_messages=_NUMBER,
                                     widget=forms.NumberInput(attrs={"step": "0.05", "size": 4}))
    # A classifier run's confusion-matrix cell (the runs page links here): its test images whose label when the
    # run trained was `label` and that it predicted as `predicted`.
    run = forms.ModelChoiceField(queryset=Run.objects.all(), required=False, widget=forms.HiddenInput)
    predicted = LabelFilterField(empty_label=None, required=False, widget=forms.HiddenInput)
    # The classifier's suggested label at the latest scoring (the health report's heat map links here).
    suggested = LabelFilterField(required=False, label="Suggested", empty_label="any suggestion")
    # Review a dataset that has not been scored yet anyway, in import order (the page asks first).
    unscored = forms.BooleanField(required=False, widget=forms.HiddenInput)
    # The images a user lassoed on the dataset map (stored: curation/maps/selections.py), or the one image of a
    # point they clicked there (its card).
    selection = forms.ModelChoiceField(queryset=ImageSelection.objects.all(), required=False, widget=forms.HiddenInput,
                                       error_messages={"invalid_choice": "no such selection (it may have been made "
                                                                         "on another site)"})
    image = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        low, high = data.get("min_suspicion"), data.get("max_suspicion")
        if low is not None and high is not None and low > high:
            self.add_error("max_suspicion", f"the suspicion range {low} to {high} is empty")
        run, dataset = data.get("run"), data.get("dataset")
        if run is not None:
            if dataset is None:
                data["dataset"] = run.dataset
            elif dataset.pk != run.dataset_id:
                self.add_error("run", f"run {run.pk} belongs to dataset {run.dataset.name}, not {dataset.name}")
        elif data.get("predicted") is not None:
            self.add_error("predicted", "predicted needs a run")
        selection, dataset = data.get("selection"), data.get("dataset")
        if selection is not None:
            if dataset is None:
                data["dataset"] = selection.dataset
            elif dataset.pk != selection.dataset_id:
                self.add_error("selection", f"selection {selection.pk} is of dataset {selection.dataset.name}, not "
                                            f"{dataset.name}")
        return data

    def queue_filters(self):
        """The cleaned filter as the review services take it (the keys of curation.selectors.images_filter)."""
        data = self.cleaned_data
        return {
            "label": data.get("label"),
            "original_label": data.get("original_label"),
            "suggested": data.get("suggested"),
            "split": data.get("split") or None,
            "status": data.get("status") or Image.Status.UNREVIEWED,
            "flagged": _FLAGGED.get(data.get("flagged") or ""),
            "signal": data.get("signal") or None,
            "min_suspicion": data.get("min_suspicion"),
            "max_suspicion": data.get("max_suspicion"),
            "run": data.get("run"),
            "predicted": data.get("predicted"),
            "selection": data.get("selection"),
            "image": data.get("image"),
        }

    def query(self):
        """The filter as a query string, to carry it through decisions and links: the valid fields only, so that a
        mistyped value does not travel on while the rest of the filter does."""
        return {name: value for name, value in self.data.items()
                if name in self.fields and value not in ("", None) and name not in self.errors}


# How a message names a decision other than a relabel.
DECISION_WORDS = {"confirm": "confirmed", "exclude": "excluded", "skip": "skipped"}


class DecisionForm(forms.Form):
    image_id = forms.IntegerField(min_value=1, max_value=MAX_ID)
    version = forms.IntegerField(required=False, min_value=1, max_value=MAX_VERSION)
    # "confirm", "exclude", "skip" or "relabel:<code>": one submit button per decision.
    decision = forms.CharField()
    shown_at = forms.FloatField(required=False, help_text="Server time (epoch seconds) the card was rendered.")

    def clean_decision(self):
        action, label = _parse_decision(self.cleaned_data["decision"])
        if action != SKIP and self.data.get("version") in (None, ""):
            raise forms.ValidationError(f"{action} needs the card's version")
        return action, label

    def seconds_spent(self, now):
        shown_at = self.cleaned_data.get("shown_at")
        if shown_at is None:
            return None
        return min(max(now - shown_at, 0.0), MAX_SECONDS_SPENT)


def _parse_decision(value):
    """"confirm", "exclude", "skip" or "relabel:<code>" -> (action, label code or None)."""
    action, _, label = value.partition(":")
    if action not in ACTIONS:
        raise forms.ValidationError(f"unknown decision {value!r}")
    if action == "relabel":
        if not (label.isascii() and label.isdigit()) or not 0 <= int(label) < NUM_CLASSES:
            raise forms.ValidationError(f"relabel needs a class 0-{NUM_CLASSES - 1}")
        return action, int(label)
    return action, None


class GridDecisionForm(forms.Form):
    """One action on the grid's selection: each picked tile sends "<image id>:<version shown>"."""

    decision = forms.CharField()
    page = forms.IntegerField(min_value=1, max_value=MAX_PAGE, required=False)
    shown_at = forms.FloatField(required=False)
    # Curators only (the grid offers the checkbox to them): decide images another reviewer holds a lease on.
    override_lease = forms.BooleanField(required=False)

    def __init__(self, data, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.picks = data.getlist("pick") if hasattr(data, "getlist") else data.get("pick", [])

    def clean_decision(self):
        action, label = _parse_decision(self.cleaned_data["decision"])
        if action == SKIP:
            raise forms.ValidationError("the grid confirms, relabels or excludes; skip works in the queue")
        return action, label

    def clean(self):
        data = super().clean()
        items = []
        for pick in self.picks:
            image_id, _, version = str(pick).partition(":")
            image_id, version = _ascii_number(image_id, MAX_ID), _ascii_number(version, MAX_VERSION)
            if image_id is None or version is None:
                raise forms.ValidationError(f"a selected image is '<id>:<version>', not {pick!r}")
            items.append((image_id, version))
        if not items:
            raise forms.ValidationError("select at least one image first")
        data["items"] = items
        return data

    def seconds_per_image(self, now):
        """The time since the page was shown, shared out over the selection."""
        shown_at = self.cleaned_data.get("shown_at")
        if shown_at is None or not self.cleaned_data.get("items"):
            return None
        return min(max(now - shown_at, 0.0), MAX_SECONDS_SPENT) / len(self.cleaned_data["items"])
