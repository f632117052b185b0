"""The run comparison's tests of its deltas, read from the selector: only images both runs predicted under the
same label count, and the randomisation test is cached per version of the two prediction files."""
import os

import numpy as np
import pytest
from django.core.cache import cache

from curation.classifier.predictions import run_predictions_path
from curation.models import Run
from curation.web.selectors.runs import _randomisation_cache_key, accuracy_interval, runs_compare
from tests.factories import RunFactory
from training.metrics import classification_report


def _run(dataset, ids, labels, predicted, *, keep_predictions=True):
    run = RunFactory(dataset=dataset, status=Run.Status.SUCCEEDED, test_split_hash="h",
                     test_metrics=classification_report(labels, predicted, 8))
    if keep_predictions:
        path = run_predictions_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        probs = np.full((len(ids), 8), 0.01, dtype=np.float32)
        probs[np.arange(len(ids)), predicted] = 0.93
        np.savez(path, ids=np.asarray(ids), labels=np.asarray(labels), probs=probs)
    return run


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def test_only_images_both_runs_predicted_under_one_label_are_paired(faces):
    ids = np.arange(100)
    labels = ids % 8
    base = _run(faces, ids, labels, np.where(ids < 50, labels, (labels + 1) % 8))
    # the other run was tested on images 20..119, and image 20..29 carry another label there
    other_ids = np.arange(20, 120)
    other_labels = np.where(other_ids < 30, (other_ids + 3) % 8, other_ids % 8)
    other = _run(faces, other_ids, other_labels, other_labels.copy())  # right on all of its own
    verdict = runs_compare(run_ids=[base.pk, other.pk])["columns"][1]["accuracy_verdict"]
    test = verdict["test"]
    # shared with one label: 30..99 (70 images); the baseline is right on 30..49, the other on all of them
    assert (test.n, test.both_right, test.b, test.c, test.label_mismatch) == (70, 20, 0, 50, 10)
    assert verdict["css"] == "up" and "10 shared images labelled differently left out" in verdict["title"]


def test_a_run_without_predictions_is_not_tested_and_says_so(faces):
    ids = np.arange(40)
    labels = ids % 8
    base = _run(faces, ids, labels, np.where(ids < 10, labels, (labels + 1) % 8), keep_predictions=False)
    other = _run(faces, ids, labels, labels.copy())
    col = runs_compare(run_ids=[base.pk, other.pk])["columns"][1]
    for verdict in (col["accuracy_verdict"], col["macro_f1_verdict"]):
        assert verdict["css"] == "delta-noise" and verdict["test"] is None
        assert f"run {base.pk} kept no per-image test predictions" in verdict["title"]


def test_the_randomisation_test_is_cached_per_version_of_the_prediction_files(faces):
    ids = np.arange(60)
    labels = ids % 8
    base = _run(faces, ids, labels, np.where(ids < 20, labels, (labels + 1) % 8))
    other = _run(faces, ids, labels, labels.copy())
    key = _randomisation_cache_key(base, other)
    assert cache.get(key) is None
    runs_compare(run_ids=[base.pk, other.pk])
    cached = cache.get(key)
    assert cached is not None and cached.n == 60
    path = run_predictions_path(other)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a rewritten file is another version
    assert _randomisation_cache_key(base, other) != key
    path.unlink()
    assert _randomisation_cache_key(base, other) is None


@pytest.mark.parametrize("metrics, expected", [
    ({"confusion": [[30, 20], [0, 50]]}, {"n": 100, "low": 0.7112, "high": 0.8666}),
    ({"accuracy": 0.5, "support": [60, 40]}, {"n": 100, "low": 0.4038, "high": 0.5962}),
    ({"accuracy": 0.5}, None), ({}, None), ({"confusion": [[0, 0], [0, 0]]}, None),
])
def test_the_accuracy_interval_counts_test_images_from_the_metrics(metrics, expected):
    got = accuracy_interval(metrics)
    if expected is None:
        assert got is None
    else:
        text = got.pop("text")
        assert got == pytest.approx(expected, abs=1e-4)
        assert text == f"{100 * expected['low']:.1f}–{100 * expected['high']:.1f} %"
