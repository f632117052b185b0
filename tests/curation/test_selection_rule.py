"""One selection rule: whether a dataset can train is its selection's answer. For every combination of --reduced,
--augmented, a relabel precision and the doubtful rule, the check that refuses a run before it is queued agrees
with what select_training_data would select (a test split to score on, and a train split that stratified folds can
split)."""
import itertools
import warnings

import pytest
from sklearn.model_selection import StratifiedKFold

from curation.classifier.params import validate_train_params
from curation.classifier.preview import selection_for
from curation.classifier.selection import DOUBTFUL
from curation.jobs.errors import JobParamsError
from curation.models import Image
from tests.factories import DatasetFactory, GeneratedImageFactory, ImageFactory

FOLDS = 3


@pytest.fixture
def dataset(db):
    """20 reviewed disagreeing train images at suspicion 0.95: 2 relabelled to the classifier's suggestion (sad),
    18 excluded, so a 10 % precision target trusts the band. Three unreviewed images up there, flagged by the SSIM
    rule, whose suggestion is sad: --reduced drops them unless the calibrated relabel keeps them. One generated
    image (angry) from a kept source; one test image."""
    ds = DatasetFactory(name="rule")
    for k in range(20):
        ImageFactory(dataset=ds, original_label=1, label=2 if k < 2 else 1, suspicion=0.95,
                     classifier_suggested_label=2,
                     status=Image.Status.RELABELLED if k < 2 else Image.Status.EXCLUDED)
    source = None
    for _ in range(3):
        source = ImageFactory(dataset=ds, original_label=1, label=1, suspicion=0.96, classifier_suggested_label=2,
                              flagged=True)
    GeneratedImageFactory(source_image=source, gan__target_label=3)
    ImageFactory(dataset=ds, split=Image.Split.TEST)
    return ds


def _selection_can_train(dataset, params):
    """What the selection itself says: a test split, and train targets that stratified folds can split."""
    sel, _ = selection_for(dataset, params)
    if not sel.test or not sel.train:
        return False
    try:
        with warnings.catch_warnings():  # a class smaller than the folds only warns
            warnings.simplefilter("ignore", UserWarning)
            list(StratifiedKFold(FOLDS).split([[0]] * len(sel.train), [item.target for item in sel.train]))
    except ValueError:  # fewer images than folds, or no class with an image per fold
        return False
    return True


def test_the_check_and_the_selection_agree_on_every_combination(dataset):
    verdicts = {}
    for reduced, augmented, precision, doubtful in itertools.product(
            (False, True), (False, True), (None, 0.1), DOUBTFUL):
        params = {"dataset": "rule", "arch": "small_cnn", "folds": FOLDS, "reduced": reduced,
                  "augmented": augmented, "relabel_precision": precision, "doubtful": doubtful}
        try:
            clean = validate_train_params(params)
            checked = True
        except JobParamsError:
            clean, checked = {**params}, False
        verdicts[(reduced, augmented, precision, doubtful)] = checked
        assert checked == _selection_can_train(dataset, clean), (params, checked)
    # The data reach both answers, and the calibrated relabel is what keeps a reduced run trainable.
    assert verdicts[(True, False, 0.1, "ssim")] and not verdicts[(True, False, None, "ssim")]
    assert not all(verdicts.values())
