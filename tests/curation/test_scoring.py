"""Scoring through the product: transformation SSIMs upserted once, flags that follow the threshold, cleanlab
signals, and a suspicion that leans on the stronger signal."""
import io

import numpy as np
import pytest
from django.core.management import call_command

from curation.models import Image, Job, TransformScore
from curation.scoring.fusion import (
    choose_from_reviews,
    default_suspicion,
    features,
    generator_works,
)
from curation.services import image_label_change
from tests.curation.conftest import square_gan_dataset
from tests.factories import DatasetFactory, GanModelFactory, ImageFactory

QUIET = {"stdout": io.StringIO(), "stderr": io.StringIO()}

pytestmark = pytest.mark.usefixtures("inline_jobs", "one_torch_thread")


@pytest.fixture
def scored_dataset(tmp_path, db):
    name = square_gan_dataset(tmp_path, n=240)
    call_command("train_classifier", "--dataset", name, "--arch", "small_cnn", "--epochs", "1", "--folds", "2",
                 "--inline", **QUIET)
    call_command("score_ambiguity", "--dataset", name, "--inline", **QUIET)
    return name


def scores(name):
    return dict(TransformScore.objects.filter(image__dataset__name=name).values_list("image_id", "ssim"))


def test_every_image_of_the_pair_gets_one_score_per_generator_leaving_its_class(scored_dataset):
    name = scored_dataset
    pair = Image.objects.filter(dataset__name=name, split="train", label__in=(1, 2))
    rows = TransformScore.objects.filter(image__dataset__name=name)
    assert rows.count() == pair.count()
    assert set(rows.values_list("image__label", "target_label")) == {(1, 2), (2, 1)}
    assert not rows.exclude(image__split="train").exists()
    assert all(0 <= s <= 1 for s in scores(name).values())
    # Each row also holds the SSIM under the pair's other generator (into the image's label), and z is the
    # standardised contrast of the two over the generator's source class.
    from gan.scoring import standardise

    for direction in ("AB", "BA"):
        part = list(rows.filter(direction=direction).order_by("id"))
        assert part and all(r.ssim_into is not None and 0 <= r.ssim_into <= 1 for r in part)
        assert [r.z for r in part] == pytest.approx(list(standardise([r.ssim - r.ssim_into for r in part])))
    train = Image.objects.filter(dataset__name=name, split="train")
    assert not train.filter(suspicion=None).exists()  # every train image is ranked
    assert not train.filter(label_quality=None).exists()  # cleanlab scored every train image


def test_a_second_run_gives_identical_scores_and_a_rerun_after_a_crash_duplicates_nothing(scored_dataset):
    name = scored_dataset
    first = scores(name)
    call_command("score_ambiguity", "--dataset", name, "--inline", **QUIET)
    assert scores(name) == first
    assert Job.objects.filter(kind="score_ambiguity").first().result["ssim_computed"] == 0
    # As a killed run leaves it: only part of the rows written.
    TransformScore.objects.filter(pk__in=list(TransformScore.objects.values_list("pk", flat=True)[::2])).delete()
    call_command("score_ambiguity", "--dataset", name, "--inline", **QUIET)
    assert scores(name) == first and TransformScore.objects.count() == len(first)


def test_flags_follow_the_threshold(scored_dataset):
    name = scored_dataset
    values = sorted(scores(name).values())
    middle = float(np.median(values))
    call_command("score_ambiguity", "--dataset", name, "--threshold", str(middle), "--inline", **QUIET)
    flagged = set(Image.objects.filter(dataset__name=name, flagged=True).values_list("id", flat=True))
    expected = {i for i, s in scores(name).items() if s >= middle}
    assert flagged == expected and 0 < len(flagged) < len(values)
    call_command("score_ambiguity", "--dataset", name, "--threshold", "1.0", "--class-threshold", "happy=0.0",
                 "--inline", **QUIET)
    assert set(Image.objects.filter(dataset__name=name, flagged=True).values_list("label", flat=True)) == {1}


def test_a_relabelled_image_is_scored_by_the_generator_leaving_its_new_label_only(scored_dataset):
    name = scored_dataset
    image = Image.objects.filter(dataset__name=name, split="train", label=1).order_by("id").first()
    before = TransformScore.objects.get(image=image)
    assert (before.direction, before.target_label) == ("AB", 2)  # happy -> sad
    image_label_change(image_id=image.pk, action="relabel", label=2, expected_version=image.version, note="sad")
    call_command("score_ambiguity", "--dataset", name, "--inline", **QUIET)
    after = TransformScore.objects.filter(image=image).exclude(pk=before.pk).get()
    assert (after.direction, after.target_label) == ("BA", 1)  # sad -> happy, computed for the new label
    # The row for the old label stays stored (the review card shows it) but must not reach the image's scores,
    # however extreme it is.
    TransformScore.objects.filter(pk=before.pk).update(ssim=1.0, z=100.0)
    call_command("score_ambiguity", "--dataset", name, "--threshold", "0.999", "--inline", **QUIET)
    image.refresh_from_db()
    assert image.ambiguity == pytest.approx(after.ssim) and image.gan_score == pytest.approx(after.z)
    assert image.gan_suggested_label == 1 and not image.flagged


def test_a_label_another_class_beats_is_more_suspect_than_an_equally_unsure_one_that_leads(scored_dataset, settings):
    # Two train images the out-of-fold models gave their label the same 0.4: for one another class is at 0.55,
    # for the other the rest is spread thin. The first label is the likelier mistake, and the queue says so.
    from pathlib import Path

    from curation.models import Run

    name = scored_dataset
    run = Run.objects.filter(dataset__name=name).exclude(oof_file="").get()
    path = Path(settings.MEDIA_ROOT) / run.oof_file
    with np.load(path) as data:
        oof = {k: data[k].copy() for k in data.files}
    beaten, leading = 0, 1
    for k, competitor in ((beaten, 0.55), (leading, None)):
        label = int(oof["labels"][k])
        other = (label + 1) % oof["probs"].shape[1]
        row = np.full(oof["probs"].shape[1], 0.6 / (oof["probs"].shape[1] - 1))
        if competitor is not None:
            row[:] = 0.05 / (oof["probs"].shape[1] - 2)
            row[other] = competitor
        row[label] = 0.4
        oof["probs"][k] = row
    np.savez(path, **oof)
    call_command("score_ambiguity", "--dataset", name, "--inline", **QUIET)
    images = {i.pk: i for i in Image.objects.filter(pk__in=[int(oof["ids"][beaten]), int(oof["ids"][leading])])}
    first, second = images[int(oof["ids"][beaten])], images[int(oof["ids"][leading])]
    assert first.label_quality < second.label_quality
    assert first.suspicion > second.suspicion


def test_default_suspicion_leans_on_the_classifier_and_lets_the_gan_break_ties():
    quality = np.array([0.9, 0.1, 0.5, 0.5, np.nan])
    gan = np.array([3.0, -1.0, 0.0, 2.0, 1.0])
    s = default_suspicion(quality, gan)
    assert s[1] > s[3] > s[2] > s[0]  # low label quality first; equal quality: the higher GAN score first
    assert not np.isnan(s[4])  # an image with only a GAN score is still ranked


def test_a_generator_that_fails_its_quality_check_has_no_say_in_the_default_suspicion():
    assert generator_works({"target_rate": 0.6, "source_target_rate": 0.03}) is True
    assert generator_works({"target_rate": 0.1, "source_target_rate": 0.18}) is False  # outputs less "target"
    assert generator_works({"target_rate": None, "source_target_rate": None}) is None  # no judge: not measured
    quality = np.array([0.5, 0.5, 0.5, 0.5])
    gan = np.array([2.0, -1.0, 2.0, -1.0])
    s = default_suspicion(quality, gan, gan_trusted=np.array([True, True, False, False]))
    assert s[0] > s[1]  # a working generator breaks the tie
    assert s[2] == s[3]  # a failed one does not
    # ... and does not lift or lower its images against those of working generators: same middle either way.
    assert s[2] == pytest.approx((s[0] + s[1]) / 2)


@pytest.mark.django_db
def test_the_quality_check_reads_the_snapshot_scoring_uses():
    from curation.gans.snapshots import snapshot_quality

    works = {"AB": {"target_rate": 0.6, "source_target_rate": 0.03},
             "BA": {"target_rate": 0.5, "source_target_rate": 0.1}}
    fails = {"AB": {"target_rate": 0.0, "source_target_rate": 0.2},
             "BA": {"target_rate": 0.1, "source_target_rate": 0.1}}
    gan = GanModelFactory(dataset=DatasetFactory(), source_label=1, target_label=2, epoch=4,
                          checkpoint="g.pt", losses=[{"epoch": 2, "generators": "g2.pt", "quality": works},
                                                     {"epoch": 4, "generators": "g4.pt", "quality": fails}])
    assert snapshot_quality(gan) == (4, fails)  # the last epoch's, by default
    gan.chosen_epoch = 2  # a curator picked an earlier snapshot: scoring loads it, so its quality counts
    assert snapshot_quality(gan) == (2, works)


def test_the_fitted_fusion_is_used_only_when_it_beats_every_single_signal():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    strong = y + rng.normal(0, 0.5, 200)  # a good signal
    weak = rng.normal(0, 1, 200)  # noise
    X = features(1 / (1 + np.exp(strong)), weak, weak, np.zeros(200))
    choice, model, report = choose_from_reviews(X, y, {"default": strong, "classifier": strong, "gan": weak})
    best_single = max(report["auroc"][k] for k in ("default", "classifier", "gan"))
    if choice == "logistic":
        assert report["auroc"]["logistic (5-fold CV)"] >= best_single
    else:  # the fit lost: the best single input is used, never the weak one
        assert choice in ("default", "classifier") and report["auroc"][choice] == best_single
    assert report["auroc"]["classifier"] > 0.8 and report["auroc"]["gan"] < 0.65
    few, _, few_report = choose_from_reviews(X[:10], y[:10], {"default": strong[:10]})
    assert few == "default" and "needs" in few_report["why"]
    # A fit on signals that carry nothing loses to the strong input, which is then what is used.
    noise = rng.normal(0, 1, (200, 4))
    lost, model, lost_report = choose_from_reviews(noise, y, {"default": strong, "gan": weak})
    assert lost == "default" and model is None
    assert lost_report["auroc"]["logistic (5-fold CV)"] < lost_report["auroc"]["default"]


@pytest.mark.django_db
def test_report_measures_each_signal_against_known_wrong_labels(tmp_path):
    from curation.scoring.evaluate import evaluate_signals, read_truth

    ds = DatasetFactory()
    lines = ["path,true_label,intensity,noisy"]
    for k in range(20):
        noisy = k % 4 == 0
        ImageFactory(dataset=ds, path=f"images/{k}.png", suspicion=1.0 if noisy else 0.1 * (k % 3),
                     label_quality=0.5, ambiguity=None)
        lines.append(f"images/{k}.png,happy,0.5,{int(noisy)}")
    (tmp_path / "truth.csv").write_text("\n".join(lines) + "\n")
    report = evaluate_signals(ds, read_truth(tmp_path / "truth.csv"))
    assert report["suspicion (fused)"]["all"] == {"auroc": 1.0, "ap": 1.0, "n": 20, "noisy": 5}
    assert report["cleanlab (1 - label quality)"]["all"]["auroc"] == 0.5  # a constant signal finds nothing
    assert "ssim (raw, published rule)" not in report  # no image carries it
