"""The jobs page's start forms. Each turns its fields into a job kind's parameters; the kind's own validator
(curation/jobs/registry.py, called by job_enqueue) is the judge of them, so a page, the API and the commands
accept exactly the same jobs and say the same thing about a bad one. Also the dataset page's review settings and
class guidelines, judged by the services the review_settings command uses too."""
import json

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from curation.classifier.params import resolve_init, with_default_start, with_latest_run_settings
from curation.classifier.preview import default_doubtful, doubtful_counts, retrain_preview
from curation.classifier.relabels import RelabelTargetError, check_precision_target
from curation.classifier.rescore_params import rescore_every_check
from curation.classifier.seeds import SMALL_TRAIN
from curation.importers.roots import importable_entries
from curation.jobs.errors import JobParamsError
from curation.models import AUDIT_SHARE_MAX, MAX_REVIEWS_REQUIRED, Dataset
from curation.review.audit import audit_share_check
from curation.review.crowdlab import consensus_threshold_check
from curation.review.dataset_settings import (
    GUIDELINE_MAX_CHARS,
    guidelines_check,
    reviews_required_check,
)
from training.config import ROBUST_METHODS
from training.labels import CLASSES

# Kept here as plain names: importing training.models or gan.cyclegan would import torch into the web process.
ARCHS = ("seed_cnn", "resnet18", "small_cnn")
GAN_PROFILES = ("cpu", "full")
FORMATS = ("imagefolder", "csv", "affectnet", "fer2013")
CLASS_CHOICES = [(name, name) for name in CLASSES]
ROBUST_NAMES = {"none": "cross-entropy", "eac": "erasing attention consistency (small_cnn, resnet18)",
                "gce": "generalized cross-entropy", "bootstrap": "hard bootstrapping",
                "elr": "early-learning regularization",
                "dividemix": "DivideMix: two networks, co-divided semi-supervised training (slower)",
                "glc": "Gold Loss Correction: corrects for how the reviewed labels say labels go wrong (needs "
                       "reviewed train images and a run with folds)"}
ROBUST_CHOICES = [(m, f"{m}: {ROBUST_NAMES[m]}") for m in ROBUST_METHODS]
ROBUST_HELP = ("noise-robust training: learns less from wrong labels; a reviewed label is always trained on as "
               "given")


def dataset_names():
    return list(Dataset.objects.order_by("name").values_list("name", flat=True))


def dataset_newest():
    """The name of the most recently imported dataset, or None."""
    return Dataset.objects.order_by("-created_at", "-id").values_list("name", flat=True).first()


class StartForm(forms.Form):
    key = ""  # the form's name in the page and its URL
    kind = ""  # the job kind it enqueues
    title = ""

    def __init__(self, *args, datasets=None, dataset=None, **kwargs):
        """`datasets`: the dataset names to offer, read once for all the page's forms; `dataset`: the one chosen
        at first (the dataset the page was opened for, else the newest one), never the alphabetically first."""
        super().__init__(*args, **kwargs)
        if "dataset" in self.fields:
            names = dataset_names() if datasets is None else datasets
            self.fields["dataset"].choices = [(n, n) for n in names]
            self.fields["dataset"].initial = dataset if dataset in names else dataset_newest()

    def params(self):
        """The job's parameters from cleaned data; empty optional fields are left out (the kind's defaults)."""
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


class DatasetField(forms.ChoiceField):
    """A dataset by name; the choices are set by StartForm."""


class ImportForm(StartForm):
    key, kind, title = "import", "import_dataset", "Import a dataset"
    path = forms.CharField(max_length=1000, help_text="A folder or manifest on the server (as the worker sees it).")
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS])
    name = forms.CharField(max_length=100)
    SHOWN_ENTRIES = 50  # the page lists at most this many importable paths, then says how many more there are

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        entries = importable_entries()
        self.importable = entries[:self.SHOWN_ENTRIES]
        self.importable_more = len(entries) - len(self.importable)
        self.fields["path"].widget.attrs["list"] = "importable-paths"


class TrainForm(StartForm):
    key, kind, title = "train", "train_classifier", "Train a classifier"
    dataset = DatasetField()
    arch = forms.ChoiceField(choices=[(a, a) for a in ARCHS])
    size = forms.IntegerField(required=False, initial=64)
    epochs = forms.IntegerField(required=False, initial=30)
    batch_size = forms.IntegerField(required=False, label="batch size",
                                    help_text="empty: 128, or 32 for a train split under 5,000 images")
    folds = forms.IntegerField(required=False, initial=0, help_text="0, or 2-10 for out-of-fold predictions")
    robust = forms.ChoiceField(choices=ROBUST_CHOICES, required=False, initial="none", help_text=ROBUST_HELP)
    init = forms.CharField(required=False, max_length=1000, label="start from",
                           help_text="pretrained weights: a file below the import roots, run:ID for an earlier "
                                     "run's model, or ssl:ID for a self-supervised pretraining's backbone; empty: "
                                     "the dataset's newest pretraining without labels that fits, else a random "
                                     "start; scratch: a random start")

    def params(self):
        return with_default_start(super().params())


class RetrainForm(StartForm):
    """train_classifier with the reduced/augmented switches and, like `manage.py retrain`, the settings of the
    dataset's latest finished run unless given. `preview()` says what it does to the train split before anything
    starts (curation/classifier/preview.py, the command's preview in the page's words)."""

    key, kind, title = "retrain", "train_classifier", "Retrain on cleaned labels"
    dataset = DatasetField()
    reduced = forms.BooleanField(required=False, initial=True, help_text="drop excluded and unconfirmed flagged "
                                                                          "images, apply relabels")
    doubtful = forms.ChoiceField(
        choices=[("ssim", "flagged by the SSIM rule (the published rule)"),
                 ("classifier", "flagged by the classifier (cleanlab)"), ("either", "either flag"),
                 ("none", "none (drop only excluded images)")],
        required=False, initial="ssim",
        help_text="reduced: which unreviewed images count as doubtful and are dropped; the form starts on the SSIM "
                  "rule where it flags images of this dataset, else on none")
    augmented = forms.BooleanField(required=False, help_text="add generated images")
    epochs = forms.IntegerField(required=False, help_text="empty: as the latest run")
    robust = forms.ChoiceField(choices=[("", "as the latest run"), *ROBUST_CHOICES], required=False,
                               help_text=ROBUST_HELP)
    relabel_precision = forms.FloatField(
        required=False, label="Relabel precision",
        help_text="e.g. 0.9: unreviewed images in the lowest suspicion band where reviewers chose the classifier's "
                  "suggestion at least this often train on that suggestion (stored labels do not change); empty: none")

    init = forms.CharField(required=False, max_length=1000, label="start from",
                           help_text="pretrained weights: a file below the import roots, run:ID, or ssl:ID for a "
                                     "self-supervised pretraining's backbone; empty: the latest run's start, else "
                                     "the dataset's newest self-supervised pretraining, else a random one; scratch: "
                                     "a random start")

    seeds = forms.IntegerField(
        required=False, min_value=1, max_value=20, label="Seeds",
        help_text="train this many runs (seed, seed+1, ...) as one run group: their mean and spread tell a real gain "
                  "from the luck of one seed on a small train split; empty: one run")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.doubtful_why = ""  # why the form starts on a rule other than the published one
        # Offered when the dataset the form opens on has a train split under SMALL_TRAIN images.
        if not self.is_bound:
            chosen = self.initial.get("dataset") or self.fields["dataset"].initial
            counts = doubtful_counts(chosen, with_train=True) if chosen else {"train": 0}
            if counts["train"] >= SMALL_TRAIN:
                del self.fields["seeds"]
            if counts["train"] and "doubtful" not in self.initial:
                rule = default_doubtful(None, counts)
                self.fields["doubtful"].initial = rule
                if rule != "ssim":
                    self.doubtful_why = (f"Starts on no rule (drop only what reviewers excluded): the SSIM rule flags "
                                         f"no unreviewed image of {chosen}, and the classifier flags "
                                         f"{counts['classifier']:,}, many more than are wrong; dropping its flags "
                                         f"unreviewed cost 12 points on the demo. Both rules stay available by name.")

    def clean_relabel_precision(self):
        try:
            return check_precision_target(self.cleaned_data.get("relabel_precision"))
        except RelabelTargetError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        name = data.get("dataset")
        dataset = Dataset.objects.filter(name=name).first() if name else None
        if dataset is not None and not data.get("doubtful"):  # left out (a script's POST): the form's own default
            data["doubtful"] = default_doubtful(dataset)
        return data

    def preview(self):
        """What the form's choices do to the train split now (curation.classifier.preview.retrain_preview), each
        problem with its `text` in the page's words; None when the form's data are not valid."""
        if self.is_bound:
            self.is_valid()
            if any(field != NON_FIELD_ERRORS for field in self.errors):
                return None
            data = self.cleaned_data
        else:
            data = {name: self.initial.get(name, field.initial) for name, field in self.fields.items()}
        dataset = Dataset.objects.filter(name=data.get("dataset") or "").first()
        if dataset is None:
            return None
        preview = retrain_preview(dataset, {
            "reduced": bool(data.get("reduced")), "augmented": bool(data.get("augmented")),
            "doubtful": data.get("doubtful") or default_doubtful(dataset),
            "relabel_precision": data.get("relabel_precision") or None})
        for problem in preview["problems"]:
            problem["text"] = problem_web_words(problem, dataset.name)
        preview["chain"] = any(p["code"] == "no_generated" and p["generates"] for p in preview["problems"])
        preview["chain_n"] = GENERATE_PER_DIRECTION
        preview["start_text"] = retrain_start_words(dataset.name, data.get("init"))
        preview["blocked"] = any(p["code"] == "no_generated" for p in preview["problems"])
        return preview

    def params(self):
        data = self.cleaned_data
        params = {"dataset": data["dataset"], "reduced": data["reduced"], "augmented": data["augmented"],
                  "doubtful": data.get("doubtful") or "ssim", "folds": 0}
        for key in ("epochs", "robust", "relabel_precision", "init"):
            if data.get(key) not in (None, ""):
                params[key] = data[key]
        return with_latest_run_settings(params)

    def chain_params(self):
        """The generate_retrain job's parameters: generate with the dataset's generators, then this retrain."""
        return {"dataset": self.cleaned_data["dataset"], "n": GENERATE_PER_DIRECTION,
                "train": {**self.params(), "augmented": True}}


def retrain_start_words(dataset, init):
    """Where a retrain of dataset starts, given the form's "start from" (empty: the retrain's default start,
    curation.classifier.params.default_start), in the page's words."""
    try:
        start = resolve_init(with_latest_run_settings({"dataset": dataset, "init": init or None})["init"])
    except JobParamsError:
        return None  # the form names the problem
    if start is None:
        return ("a random start. Pretraining without labels on this dataset's own images (the jobs page's "
                "\"Pretrain without labels\" form) gives a better one, which retrains then take.")
    if start.startswith("ssl:"):
        return (f"the backbone self-supervised pretraining job {start[4:]} trained on this dataset's images "
                f"(\"scratch\" in \"start from\": a random start).")
    return f"{start}."


# Images per generator direction that "Generate, then retrain" asks for.
GENERATE_PER_DIRECTION = 100
RULE_WORDS = {"ssim": "The SSIM rule", "classifier": "The classifier's flags", "either": "Either flag"}


def problem_web_words(problem, dataset):
    """A retrain preview's problem (curation.classifier.preview) in the page's words: no command-line flags."""
    if problem["code"] == "doubtful_flags_none":
        others = "; ".join(f"{RULE_WORDS[r].lower()} would drop {n:,}" for r, n in problem["others"].items())
        offer = (f" Choose another doubtful rule: {others}." if others else
                 " No rule flags any unreviewed image yet: score the dataset first, or review it.")
        return (f"{RULE_WORDS[problem['rule']]} flags no unreviewed image of {dataset}, so Reduced drops only the "
                f"images reviewers excluded.{offer}")
    if problem["code"] == "no_generated":
        if not problem["generators"]:
            return (f"Augmented adds images made by a CycleGAN, and {dataset} has no trained CycleGAN pair yet: "
                    f"train one with “Train a CycleGAN pair” above, or untick Augmented.")
        pairs = ", ".join(" ↔ ".join(g["pair"]) for g in problem["generators"])
        if not problem["generates"]:
            return (f"Augmented adds generated images, and {dataset} has none: its generators ({pairs}) failed "
                    f"their quality check (the classifier does not call their outputs the target class), so their "
                    f"images would add wrong labels. Untick Augmented, or generate anyway with “Generate images” "
                    f"above (include failing generators).")
        return (f"Augmented adds generated images, and {dataset} has none yet. “Generate, then retrain” generates up "
                f"to {GENERATE_PER_DIRECTION} images per direction with its CycleGAN pairs ({pairs}) and starts this "
                f"retrain when they are made; or untick Augmented.")
    raise ValueError(problem["code"])


class PairForm(StartForm):
    dataset = DatasetField()
    source = forms.ChoiceField(choices=CLASS_CHOICES, initial="happy")
    target = forms.ChoiceField(choices=CLASS_CHOICES, initial="sad")

    def params(self):
        p = super().params()
        p["pair"] = [p.pop("source"), p.pop("target")]
        return p


class CycleGanForm(PairForm):
    key, kind, title = "cyclegan", "train_cyclegan", "Train a CycleGAN pair"
    profile = forms.ChoiceField(choices=[(p, p) for p in GAN_PROFILES])
    epochs = forms.IntegerField(required=False, help_text="empty: the profile's")
    epochs_decay = forms.IntegerField(required=False, label="decay epochs")
    size = forms.IntegerField(required=False)


class GenerateForm(PairForm):
    key, kind, title = "generate", "generate_images", "Generate images"
    n = forms.IntegerField(initial=100, label="images per direction")
    include_failing = forms.BooleanField(required=False, label="include failing generators",
                                         help_text="also from a generator that failed its quality check")


class ScoreForm(StartForm):
    key, kind, title = "score", "score_ambiguity", "Score ambiguity"
    dataset = DatasetField()
    threshold = forms.FloatField(initial=0.85, help_text="SSIM at or above which an image is flagged")



class DuplicatesForm(StartForm):
    key, kind, title = "duplicates", "find_duplicates", "Find near-duplicates and test leaks"
    dataset = DatasetField()
    max_hash_distance = forms.IntegerField(required=False, label="pHash bits", help_text="of 64 (default 22)")
    max_colour_distance = forms.FloatField(required=False, label="colour distance",
                                           help_text="1 - cosine of the colour thumbnails (default 0.03)")
    max_residual = forms.FloatField(required=False, label="aligned residual",
                                    help_text="what a linked pair may differ by once aligned (default 0.04)")


IN_SAMPLE_WARNING = ("In-sample predictions (from a model that trained on these images' labels) make label-issue "
                     "scores optimistic: the model has learnt the wrong labels too, so it finds fewer of them than "
                     "there are. Use out-of-fold or held-out predictions where you can.")


class ImportPredictionsForm(StartForm):
    """import_predictions: your own model's probabilities (and embeddings) as a model the queue can be fed by."""

    key, kind, title = "predictions", "import_predictions", "Import your model's predictions"
    dataset = DatasetField()
    path = forms.CharField(max_length=1000, label="predictions file",
                           help_text="CSV or Parquet on the server, below the import roots: path and 8 class columns "
                                     "(named by class, or in AffectNet's order); probabilities or logits")
    embeddings = forms.CharField(max_length=1000, required=False, label="embeddings file",
                                 help_text="optional: .npy (one row per predictions row, in order) or Parquet keyed "
                                           "by path; Datalab's neighbours are found with them")
    sample = forms.ChoiceField(
        label="the predictions are", choices=[
            ("", "say which: out-of-sample or in-sample"),
            ("out", "out-of-sample: the model never trained on these images' labels (cross-validated, or other data)"),
            ("in", "in-sample: the model trained on these images' labels")],
        help_text=IN_SAMPLE_WARNING)
    feed_queue = forms.BooleanField(required=False, initial=True, label="feed the queue with it",
                                    help_text="from the next scoring; you can switch back on the dataset page")
    name = forms.CharField(max_length=100, required=False, help_text="empty: the file's name")

    def params(self):
        data = self.cleaned_data
        params = {"dataset": data["dataset"], "path": data["path"], "out_of_sample": data["sample"] == "out",
                  "feed_queue": data["feed_queue"]}
        for key in ("embeddings", "name"):
            if data.get(key):
                params[key] = data[key]
        return params


class MapForm(StartForm):
    key, kind, title = "map", "map_dataset", "Map the dataset (its embeddings in 2-D)"
    dataset = DatasetField()
    method = forms.ChoiceField(choices=[("auto", "auto: UMAP where umap-learn is installed, else PCA"),
                                        ("umap", "UMAP"), ("pca", "PCA")], initial="auto")
    force = forms.BooleanField(required=False, label="recompute",
                               help_text="even if the embeddings are unchanged (else the stored map is reused)")



class PretrainForm(StartForm):
    """pretrain_ssl: SimCLR or VICReg on the dataset's images (the test split left out), no labels read; a train or
    retrain started with "start from" ssl:ID takes the backbone."""

    key, kind, title = "pretrain", "pretrain_ssl", "Pretrain without labels (self-supervised)"
    dataset = DatasetField()
    method = forms.ChoiceField(
        required=False, initial="simclr",
        choices=[("simclr", "SimCLR: tells each image's two views from the batch's others"),
                 ("vicreg", "VICReg: pulls two views together, keeps the features spread and decorrelated")])
    arch = forms.ChoiceField(choices=[(a, a) for a in ARCHS],
                             help_text="the classifier whose backbone is pretrained; the run that starts from it "
                                       "trains the same one")
    size = forms.IntegerField(required=False, initial=64)
    epochs = forms.IntegerField(required=False, initial=20)
    batch_size = forms.IntegerField(required=False, label="batch size", initial=128,
                                    help_text="images a step, each seen twice; the dataset needs at least this many "
                                              "images outside its test split")
    seed = forms.IntegerField(required=False, initial=0)



START_FORMS = {f.key: f for f in (TrainForm, RetrainForm, PretrainForm, CycleGanForm, GenerateForm, ScoreForm,
                                  DuplicatesForm, ImportForm, ImportPredictionsForm, MapForm)}


class GanEpochForm(forms.Form):
    """Any whole epoch passes the form (empty: the last epoch's generators); gan_choose_epoch says whether that
    epoch's generators were saved."""

    epoch = forms.IntegerField(required=False, min_value=1)


class ReviewSettingsForm(forms.Form):
    """The dataset page's reviews-per-image setting; the value is judged by the service the review_settings command
    also uses (curation.review.dataset_settings)."""

    reviews_required = forms.CharField(
        label="Reviews per image", max_length=20,
        error_messages={"required": f"Reviews per image: enter a whole number 1-{MAX_REVIEWS_REQUIRED}."},
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_REVIEWS_REQUIRED, "step": 1}),
        help_text="1: the first decision applies. More: that many reviewers vote; a unanimous vote applies, any "
                  "other goes to the curators' disputes page.")

    def clean_reviews_required(self):
        try:
            return reviews_required_check(self.cleaned_data["reviews_required"])
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


class RescoreEveryForm(forms.Form):
    """Review rounds on the dataset page: rescore after every N decisions, or off (empty); judged by the service the
    review_settings command also uses."""

    rescore_every = forms.CharField(
        label="Rescore after every", max_length=20, required=False,
        widget=forms.NumberInput(attrs={"min": 1, "step": 1, "placeholder": "off"}),
        help_text="decisions: then the out-of-fold models are refitted on the labels as reviewed and the queue is "
                  "rescored, without stopping anyone. Empty: off.")

    def clean_rescore_every(self):
        try:
            return rescore_every_check(self.cleaned_data["rescore_every"])
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


class ConsensusThresholdForm(forms.Form):
    """The CROWDLAB consensus threshold on the dataset page: a quality 0-1, or off (empty: unanimity); judged by the
    service the review_settings command also uses (curation.review.crowdlab)."""

    consensus_threshold = forms.CharField(
        label="Consensus threshold", max_length=20, required=False,
        widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": 0.05, "placeholder": "off"}),
        help_text="0-1. When reviewers' votes differ, CROWDLAB's consensus (their votes weighed by each reviewer's "
                  "estimated quality and the classifier's probabilities) applies if its quality is at least this; "
                  "below it the image goes to the disputes page. Empty: off, only unanimous votes apply.")

    def clean_consensus_threshold(self):
        try:
            return consensus_threshold_check(self.cleaned_data["consensus_threshold"])
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


class AuditShareForm(forms.Form):
    """The random audit slice's share on the dataset page; judged by the service the review_settings command and
    the API also use (curation.review.audit)."""

    audit_share = forms.CharField(
        label="Audit share", max_length=20,
        error_messages={"required": f"Audit share: enter a number 0-{AUDIT_SHARE_MAX:g} (0 turns the audit off)."},
        widget=forms.NumberInput(attrs={"min": 0, "max": AUDIT_SHARE_MAX, "step": 0.01}),
        help_text=f"0-{AUDIT_SHARE_MAX:g}: this share of the cards reviewers are served are images drawn at random "
                  "(stratified by given label) instead of the most suspicious ones; the card does not say which. "
                  "Their decisions give the estimates below. 0 turns the audit off.")

    def clean_audit_share(self):
        try:
            return audit_share_check(self.cleaned_data["audit_share"])
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


def guideline_field_name(name):
    return f"guideline_{name}"


class GuidelinesForm(forms.Form):
    """The dataset's guideline per class (empty: none), and the guidelines as the editor showed them (`seen`), so
    that the service writes only what this curator changed and refuses to overwrite another's concurrent edit."""

    seen = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, dataset=None, **kwargs):
        super().__init__(*args, **kwargs)
        stored = (dataset.guidelines or {}) if dataset is not None else {}
        for name in CLASSES:
            self.fields[guideline_field_name(name)] = forms.CharField(
                label=name, required=False, initial=stored.get(name, ""), strip=True,
                widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "maxlength": GUIDELINE_MAX_CHARS}))
        self.fields["seen"].initial = json.dumps(stored, sort_keys=True)

    def guideline_fields(self):
        return [self[guideline_field_name(name)] for name in CLASSES]

    def clean_seen(self):
        try:
            seen = json.loads(self.cleaned_data["seen"] or "{}")
        except ValueError:
            seen = None
        if not isinstance(seen, dict):
            raise forms.ValidationError("The form lost the guidelines it was opened with; reload the page.")
        return seen

    def clean(self):
        data = super().clean()
        guidelines = {name: data.get(guideline_field_name(name), "") for name in CLASSES}
        try:
            data["guidelines"] = guidelines_check(guidelines)
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
        data["submitted"] = guidelines
        return data


class QueueModelForm(forms.Form):
    """Which model feeds the dataset's queue: the latest product run (empty) or one of its imported models; judged
    by the service the review_settings command also uses (curation.review.dataset_settings)."""

    queue_run = forms.ChoiceField(label="Model feeding the queue", required=False)

    def __init__(self, *args, imported=(), **kwargs):
        """`imported`: the dataset's finished imported runs, newest first."""
        super().__init__(*args, **kwargs)
        self.fields["queue_run"].choices = [("", "the latest product run (out-of-fold)")] + [
            (str(r.pk), f"imported model {r.pk}: {r.config.get('name') or r.config.get('file')} "
                        f"({'out-of-sample' if r.config.get('out_of_sample') else 'IN-SAMPLE'})") for r in imported]
