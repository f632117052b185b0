"""Data model. Labels and job state change only through services (curation/services.py, curation/jobs/)."""
import random

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_save

from curation.tokens import revoke_on_password_change
from training.labels import CLASSES

LABEL_CHOICES = [(code, name) for code, name in enumerate(CLASSES)]
MAX_REVIEWS_REQUIRED = 9
# The random audit slice of the review queue (curation/review/audit.py): the share of served cards that are random
# draws, by default, and the most a curator may set (half the queue's cards; beyond it the queue stops being one).
AUDIT_SHARE_DEFAULT = 0.05
AUDIT_SHARE_MAX = 0.5


def audit_key_draw():
    """An image's place in its dataset's random audit order: uniform on [0, 1), independent of everything else."""
    return random.random()

dataset_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
    "A dataset name is 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit.",
)


class Dataset(models.Model):
    class Format(models.TextChoices):
        AFFECTNET = "affectnet"
        FER2013 = "fer2013"
        IMAGEFOLDER = "imagefolder"
        CSV = "csv"

    name = models.CharField(max_length=100, unique=True, validators=[dataset_name_validator])
    format = models.CharField(max_length=20, choices=Format.choices)
    source = models.CharField(max_length=1000, help_text="Where the files were imported from.")
    # Carved splits are drawn with this seed once, then frozen on the Image rows.
    split_seed = models.PositiveIntegerField(default=0)
    test_fraction = models.FloatField(default=0.15)
    val_fraction = models.FloatField(default=0.1)
    # Reviewers who must decide an image before a decision applies (curation/review/votes.py). 1: the first
    # decision applies; K > 1: K votes, applied when unanimous, otherwise the image goes to the curators' disputes.
    reviews_required = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_REVIEWS_REQUIRED)])
    # A curator's guidelines per class, shown to reviewers on the review card: {class name: text}, classes without
    # one left out (curation/review/dataset_settings.py writes them).
    guidelines = models.JSONField(default=dict, blank=True)
    # Review rounds (curation/classifier/rescore_params.py): after this many decisions since the last rescore, the next
    # decision queues one (out-of-fold models refitted on the reviewed labels, then the queue rescored). None: off.
    rescore_every = models.PositiveIntegerField(null=True, blank=True)
    # With several reviewers: an image whose votes differ stays disputed only when CROWDLAB's consensus quality
    # (curation/review/crowdlab.py) is below this; otherwise the consensus label applies. None: unanimity.
    consensus_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # The random audit slice (curation/review/audit.py): this share of the cards the queue serves are images drawn
    # at random, stratified by given label, whose decisions give the dataset page its estimates. 0: off.
    audit_share = models.FloatField(
        default=AUDIT_SHARE_DEFAULT, validators=[MinValueValidator(0.0), MaxValueValidator(AUDIT_SHARE_MAX)])
    # The model whose probabilities and embeddings feed the queue's classifier and Datalab signals: a curator's pick
    # of an imported model (Run.Source.IMPORTED, curation/importers/predictions.py). None: the latest product run
    # with out-of-fold probabilities (curation.selectors.dataset_queue_run).
    queue_run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Image(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train"
        VAL = "val"
        TEST = "test"

    class Status(models.TextChoices):
        UNREVIEWED = "unreviewed"
        CONFIRMED = "confirmed"
        RELABELLED = "relabelled"
        EXCLUDED = "excluded"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images")
    path = models.CharField(max_length=500, help_text="Path relative to the dataset root, as the owner knows it.")
    file = models.CharField(max_length=600, help_text="Stored copy, relative to MEDIA_ROOT.")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the file's bytes.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    split = models.CharField(max_length=5, choices=Split.choices)
    original_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNREVIEWED)
    # Optimistic locking: every label decision must name the version it saw.
    version = models.PositiveIntegerField(default=1)
    # Summary scores written by scoring jobs (the per-generator rows behind them come with scoring).
    ambiguity = models.FloatField(null=True, blank=True, help_text="Highest SSIM against a CycleGAN transformation.")
    suspicion = models.FloatField(null=True, blank=True, help_text="Fused score that orders the review queue.")
    flagged = models.BooleanField(default=False, help_text="Flagged ambiguous by scoring (the SSIM rule).")
    gan_score = models.FloatField(null=True, blank=True, help_text="Highest normalised SSIM over its generators.")
    gan_suggested_label = models.PositiveSmallIntegerField(null=True, blank=True, choices=LABEL_CHOICES)
    label_quality = models.FloatField(null=True, blank=True, help_text="cleanlab label-quality score (low = suspect).")
    classifier_flagged = models.BooleanField(default=False, help_text="cleanlab found a label issue.")
    classifier_suggested_label = models.PositiveSmallIntegerField(null=True, blank=True, choices=LABEL_CHOICES)
    # cleanlab Datalab on the latest run's out-of-fold embeddings and probabilities (score_ambiguity).
    datalab_label_quality = models.FloatField(
        null=True, blank=True, help_text="Datalab label score from the embedding's neighbours' labels (low = suspect).")
    datalab_label_issue = models.BooleanField(default=False, help_text="Datalab found a label issue from neighbours.")
    datalab_outlier_score = models.FloatField(
        null=True, blank=True, help_text="Datalab outlier score of the embedding (low = atypical).")
    datalab_outlier = models.BooleanField(default=False, help_text="Datalab called the image an outlier.")
    datalab_near_duplicate_score = models.FloatField(
        null=True, blank=True, help_text="Datalab near-duplicate score (low = a near copy of another image).")
    datalab_near_duplicates = models.JSONField(
        default=list, blank=True, help_text="Ids of the images in Datalab's near-duplicate set with this one.")
    # The last decision that stands (set by image_label_change, restored by undo), on the row itself so that the
    # export needs no join to the audit table.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviewed_images"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # Review lease (curation/review/services.py): a claim that has expired is free for anyone to take.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="claimed_images"
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # K reviewers disagreed (Dataset.reviews_required > 1): out of the queue until a curator resolves it.
    disputed = models.BooleanField(default=False)
    # The random audit (curation/review/audit.py): the image's place in the audit order (uniform, drawn once), and
    # whether the queue has served it as an audit card. The audit sample of a given label is every image of that
    # label up to the highest audit_key served so far, so images decided from the queue before the audit reached
    # them count too: the sample stays a simple random one.
    audit_key = models.FloatField(default=audit_key_draw)
    audit = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "path"], name="image_unique_path"),
            models.UniqueConstraint(fields=["dataset", "content_hash"], name="image_unique_content"),
        ]
        indexes = [
            models.Index(fields=["dataset", "split", "label"]),
            models.Index(fields=["dataset", "status"]),
            # The review queue's order (most suspicious first, then id) read straight off the index; scored and
            # unscored images are queried apart because neither SQLite nor a plain index orders NULLs last.
            models.Index(fields=["dataset", "status", "-suspicion", "id"], name="image_review_queue"),
            models.Index(fields=["dataset"], condition=Q(disputed=True), name="image_disputed"),
            # The scored order whatever the status (the known-truth panel's queue top), and its count.
            models.Index(fields=["dataset", "-suspicion", "id"], condition=Q(suspicion__isnull=False),
                         name="image_scored_order"),
            # The audit's next draw of a given label (lowest audit_key still unreviewed), and its drawn images.
            models.Index(fields=["dataset", "status", "original_label", "audit_key"], name="image_audit_order"),
            models.Index(fields=["dataset", "original_label", "audit_key"], condition=Q(audit=True),
                         name="image_audit_drawn"),
        ]

    def __str__(self):
        return f"{self.dataset_id}:{self.path}"


class LabelChange(models.Model):
    """Append-only audit of every label decision. Rows are never updated or deleted."""

    class Action(models.TextChoices):
        CONFIRM = "confirm"
        RELABEL = "relabel"
        EXCLUDE = "exclude"
        UNDO = "undo"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="label_changes")
    old_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    new_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    old_status = models.CharField(max_length=12, choices=Image.Status.choices)
    new_status = models.CharField(max_length=12, choices=Image.Status.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    # Time the reviewer spent on the decision, as the client measured it (None: not measured).
    seconds_spent = models.FloatField(null=True, blank=True)
    # An audit decision: made on an image the queue served as a random audit card (Image.audit).
    audit = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["user", "-id"], name="labelchange_user_recent")]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("LabelChange rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("LabelChange rows are append-only")


class ReviewSkip(models.Model):
    """A reviewer passed over an image without deciding. Kept as data: the image is not offered to that reviewer
    again, and skips show which images people find hard."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_skips")
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "image"], name="reviewskip_user_image")]


class ReviewVote(models.Model):
    """One reviewer's decision on an image of a dataset that needs several (Dataset.reviews_required > 1).

    A round of votes is the image's `version`: votes count toward the round of the version they were cast on, so
    when the round's decision applies (the version moves on), a later undo opens a fresh round. Rows are only
    ever added, except that a voter's undo of an open vote sets `withdrawn_at` (the row stays)."""

    class Action(models.TextChoices):
        CONFIRM = "confirm"
        RELABEL = "relabel"
        EXCLUDE = "exclude"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_votes")
    version = models.PositiveIntegerField(help_text="The image version (the round) the vote was cast on.")
    action = models.CharField(max_length=10, choices=Action.choices)
    # The label voted for: the image's label for confirm, the new one for relabel; None for exclude.
    label = models.PositiveSmallIntegerField(null=True, blank=True, choices=LABEL_CHOICES)
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["image", "version"], name="reviewvote_round"),
                   models.Index(fields=["user", "-id"], name="reviewvote_user_recent")]
        constraints = [models.UniqueConstraint(fields=["image", "user", "version"], condition=Q(withdrawn_at=None),
                                               name="reviewvote_once_per_round")]


class TrainingStatus(models.TextChoices):
    """The life of a training run or a CycleGAN (its Job carries the queueing and attempts)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Run(models.Model):
    """One classifier training run: what it trained on (snapshot), how it went (per epoch), how it scored on the
    dataset's frozen test split, and where its checkpoint, plots and out-of-fold probabilities are."""

    Status = TrainingStatus

    class Source(models.TextChoices):
        TRAINED = "trained"  # the product trained it (train_classifier)
        IMPORTED = "imported"  # a user's own model's predictions, imported from a file (import_predictions)

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="runs")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.TRAINED)
    job = models.ForeignKey("Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    arch = models.CharField(max_length=20)
    config = models.JSONField(default=dict)
    reduced = models.BooleanField(default=False)
    augmented = models.BooleanField(default=False)
    folds = models.PositiveSmallIntegerField(default=0, help_text="K of the out-of-fold predictions; 0 = none.")
    # The exact (image, label) pairs trained on: a CSV under the run's folder and its SHA-256.
    snapshot_hash = models.CharField(max_length=64, blank=True)
    snapshot_file = models.CharField(max_length=300, blank=True)
    selection = models.JSONField(default=dict, help_text="Counts: train, val, test, dropped, relabelled, generated.")
    # SHA-256 of the test split's (image id, label) pairs: equal for every run of a dataset.
    test_split_hash = models.CharField(max_length=64, blank=True)
    history = models.JSONField(default=list, help_text="Per-epoch train/val loss and accuracy.")
    best_epoch = models.PositiveIntegerField(default=0)
    test_metrics = models.JSONField(null=True, blank=True)
    checkpoint = models.CharField(max_length=300, blank=True)
    oof_file = models.CharField(max_length=300, blank=True)
    plots = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    # The run a retrain took its settings from (the dataset's latest finished run then): the collapse warning
    # (curation/classifier/collapse.py) compares with it. None for a first training.
    derived_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The runs one `--seeds K` command (or form) started together: the comparison reports their mean and spread.
    group = models.CharField(max_length=32, blank=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"run {self.pk} {self.arch} on {self.dataset_id}"


class GanModel(models.Model):
    """A CycleGAN between two emotions of a dataset: G_A maps source -> target, G_B maps target -> source.

    `losses` holds one dict per epoch: the losses, the sample grid's file, and at snapshot epochs the generators'
    file and the quality instrument (per direction: target-class rate of the outputs under the dataset's latest
    classifier, that rate on the sources, and mean SSIM to the source)."""

    Status = TrainingStatus

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="gans")
    job = models.ForeignKey("Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="gans")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    source_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    target_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    profile = models.CharField(max_length=10, default="cpu")
    config = models.JSONField(default=dict)
    n_source = models.PositiveIntegerField(default=0)
    n_target = models.PositiveIntegerField(default=0)
    classifier_run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                       help_text="The classifier the quality instrument used.")
    epoch = models.PositiveIntegerField(default=0)
    losses = models.JSONField(default=list)
    checkpoint = models.CharField(max_length=300, blank=True, help_text="Full training state of the last epoch.")
    # Which snapshot's generators scoring uses; None: the last epoch's. A curator may pick another.
    chosen_epoch = models.PositiveIntegerField(null=True, blank=True)
    # When a curator chose this CycleGAN for its pair: scoring, the review card and generation use the pair's
    # CycleGAN chosen last, else its newest finished one (curation.gans.snapshots.pair_generators).
    chosen_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"CycleGAN {self.pk} {self.source_label}<->{self.target_label}"


class GeneratedImage(models.Model):
    """An image a CycleGAN generator made from a train-split image; used by augmented retraining."""

    gan = models.ForeignKey(GanModel, on_delete=models.CASCADE, related_name="generated")
    source_image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="generated")
    target_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    file = models.CharField(max_length=600, help_text="Relative to MEDIA_ROOT.")
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gan", "source_image", "target_label"], name="generated_once_per_source"),
        ]


class TransformScore(models.Model):
    """SSIM between an image and its transformation by one generator leaving its labelled class; written by
    upsert, so re-scoring never duplicates a row and only new images or generators are computed."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="transform_scores")
    gan = models.ForeignKey(GanModel, on_delete=models.CASCADE, related_name="scores")
    direction = models.CharField(max_length=2, help_text="AB: G_A (source -> target); BA: G_B (target -> source).")
    target_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)
    epoch = models.PositiveIntegerField(help_text="The generator snapshot used.")
    ssim = models.FloatField()
    # SSIM between the image and its transformation by the pair's other generator, the one into the image's label,
    # which the identity loss teaches to leave such images alone: how much a generator changes this image when it
    # should not (blur, its texture), the baseline its ssim is read against. Null on rows scored before it existed.
    ssim_into = models.FloatField(null=True)
    # The contrast ssim - ssim_into, standardised ((x - mean) / std) over the images of the generator's source
    # class: comparable across generators, and free of how much any generator changes this particular image.
    z = models.FloatField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "gan", "direction"], name="transform_score_once")]


class Job(models.Model):
    """One unit of background work. This row, not Celery's result backend, is what the UI, API and CLI read."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    queue = models.CharField(max_length=20, default="cpu")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts started, including the running one.")
    max_attempts = models.PositiveIntegerField(default=3)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What a job has durably done so far, written in the same transaction as the work it describes, so that a
    # re-run after a crash resumes instead of repeating it.
    state = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid that runs the current attempt")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The job this one is a part of (a score_chunk's score_ambiguity job), which enqueued it and runs or waits for
    # it. CASCADE: a part means nothing without its whole, so deleting a job deletes its parts rather than leaving
    # orphans that the jobs page would list as jobs of their own (it lists only jobs without a parent).
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        ordering = ["-id"]

    def __str__(self):
        return f"job {self.pk} {self.kind} {self.status}"

    @property
    def is_finished(self):
        return self.status in self.FINISHED


class WorkerHeartbeat(models.Model):
    """A live worker process says so here every few seconds; commands use it to tell whether anyone will run a job."""

    name = models.CharField(max_length=200, unique=True)
    queues = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)


class DuplicateMember(models.Model):
    """An image in a group of near-duplicates found by the find_duplicates job (curation/duplicates/). A group is
    named by its lowest image id. Each run of the job replaces its dataset's rows; the job's result keeps counts."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="duplicate_members")
    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="duplicate_member")
    group = models.PositiveIntegerField(help_text="The lowest image id in the group.")
    job = models.ForeignKey("Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Perceptual-hash distance (bits of 64) to its nearest fellow member; which signals linked it ("phash+colour";
    # an embedding distance may be added).
    distance = models.FloatField()
    linked_by = models.CharField(max_length=40)

    class Meta:
        indexes = [models.Index(fields=["dataset", "group"], name="duplicate_group")]



class DatasetPanels(models.Model):
    """The dataset page's leak and known-truth panels, stored so that a view reads one row instead of walking every
    image (curation/duplicates/leaks.py: dataset_leaks, leaks_refresh; curation/truth.py: known_truth,
    truth_refresh). Every writer of their inputs refreshes them: find_duplicates and import_dataset recompute the
    leak report, register_truth the truth counts, and each label change (curation.signals.label_changed, sent by
    image_label_change inside its transaction) moves the truth counts by its own difference and recomputes the leak
    report only where it excluded or restored a grouped or test image. None (a leak report) or truth_counted False:
    not computed yet; the reader computes and stores it once."""

    dataset = models.OneToOneField(Dataset, on_delete=models.CASCADE, related_name="panels")
    # dataset_leaks' figures that read the images (groups, splits, leaks, examples, the test split's hash); the
    # latest job and the runs on an earlier test split are read at each view (two small queries).
    leaks = models.JSONField(null=True, blank=True)
    # The known-truth counts over the images the registered truth file names (TruthLabel); the queue's first N are
    # read at each view (one bounded query) since they depend on N and on the scoring's order.
    truth_counted = models.BooleanField(default=False)
    truth_known = models.IntegerField(default=0)
    truth_wrong = models.IntegerField(default=0)
    truth_reviewed = models.IntegerField(default=0)
    truth_fixed_relabelled = models.IntegerField(default=0)
    truth_fixed_excluded = models.IntegerField(default=0)
    truth_kept_wrong = models.IntegerField(default=0)
    truth_relabelled_wrong = models.IntegerField(default=0)
    truth_excluded_right = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class TruthLabel(models.Model):
    """An image's true label from its dataset's registered truth file (curation/truth.py): what the known-truth
    panel counts against. Only that panel reads it (tests/curation/test_truth.py)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="truth_label")
    true_label = models.PositiveSmallIntegerField(choices=LABEL_CHOICES)

    class Meta:
        indexes = [models.Index(fields=["dataset"], name="truth_label_dataset")]


class ImageSelection(models.Model):
    """A set of a dataset's images a user picked (the dataset map's lasso or box), stored so that the grid can show
    exactly them by its id (?selection=ID) however many there are: an address stays short where a list of thousands
    of ids would not. Never changed once made; a new selection is a new row."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="selections")
    images = models.ManyToManyField(Image, related_name="selections")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # What picked them, in words ("box on the map of run 12", "lasso ..."), shown above the grid.
    source = models.CharField(max_length=200, blank=True)


# A new password revokes the user's API tokens (curation/tokens.py), in every process that loads the models: the
# web, the workers and management commands such as changepassword.
post_save.connect(revoke_on_password_change, sender=settings.AUTH_USER_MODEL,
                  dispatch_uid="curation.revoke_on_password_change")
