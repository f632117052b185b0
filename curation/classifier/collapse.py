"""A run that looks like a collapse says so. Three signs, read from a finished run's own record:

- the kept (best) epoch falls in the first quarter of the run's epochs: early stopping picked an under-trained model;
- its test or validation accuracy is more than DROP points below the run it derives from (Run.derived_from: the run
  a retrain took its settings from), validation only when both validated on the same kind of split;
- its training accuracy never left chance (the larger of 1 / classes and the train split's biggest class share)
  by more than CHANCE_MARGIN.

The warning names the likely cause and offers a rerun with another seed or more patience; the run page, the
train_classifier / retrain summary and the run comparison show it. Nothing is stored: it is computed from the run.
"""
import math

DROP = 0.03  # accuracy points (as a fraction) below the run a run derives from
CHANCE_MARGIN = 0.02


def collapse_signs(run, parent=None):
    """The signs of a collapse a finished run shows, as sentences (empty when none, or while it has no metrics)."""
    if not run.test_metrics or not run.history:
        return []
    config, selection = run.config or {}, run.selection or {}
    epochs = config.get("epochs") or len(run.history)
    signs = []
    if run.best_epoch and run.best_epoch * 4 <= epochs:
        signs.append(f"kept epoch {run.best_epoch} of {epochs}, in the first quarter")
    parent = parent if parent is not None else run.derived_from
    if parent is not None and parent.test_metrics:
        drop = parent.test_metrics["accuracy"] - run.test_metrics["accuracy"]
        if drop > DROP:
            signs.append(f"test accuracy {run.test_metrics['accuracy']:.1%} is {drop * 100:.1f} points below run "
                         f"{parent.pk}'s {parent.test_metrics['accuracy']:.1%}, which it derives from")
        on = (selection.get("validation") or {}).get("on", "noisy")
        parent_on = ((parent.selection or {}).get("validation") or {}).get("on", "noisy")
        val, parent_val = kept_val_acc(run), kept_val_acc(parent)
        if on == parent_on and None not in (val, parent_val) and parent_val - val > DROP:
            signs.append(f"validation accuracy {val:.1%} is {(parent_val - val) * 100:.1f} points below run "
                         f"{parent.pk}'s {parent_val:.1%}")
    chance = max(1 / (config.get("num_classes") or 8), selection.get("majority_share") or 0)
    best_train = max((h.get("train_acc") or 0 for h in run.history), default=0)
    if best_train <= chance + CHANCE_MARGIN:
        signs.append(f"training accuracy never left chance (at most {best_train:.1%}; chance {chance:.1%})")
    return signs


def kept_val_acc(run):
    for h in run.history or []:
        if h.get("epoch") == run.best_epoch:
            value = h.get("val_acc")
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return None


def collapse_warning(run, parent=None):
    """{"signs", "cause", "rerun", "text"} for a run that looks like a collapse, else None."""
    signs = collapse_signs(run, parent)
    if not signs:
        return None
    config, selection = run.config or {}, run.selection or {}
    validation = selection.get("validation") or {}
    epochs, seed = config.get("epochs") or len(run.history), config.get("seed", 0)
    patience = config.get("early_stopping_patience", 5)
    early = any(s.startswith("kept epoch") for s in signs)
    if any(s.startswith("training accuracy") for s in signs):
        cause = ("the model learned nothing from its labels: a learning rate that does not suit the data, or "
                 "labels too noisy to learn from")
    elif early and validation.get("on") != "reviewed":
        cause = (f"early stopping on the noisy validation split ({selection.get('val', '?')} images on unreviewed "
                 f"labels) kept an under-trained epoch; reviewing validation images makes it trustworthy")
    elif early:
        cause = "early stopping kept an under-trained epoch"
    else:
        cause = (f"the spread between runs on a small train split ({selection.get('train', '?')} images): one seed "
                 f"is not enough to tell")
    more = min(epochs, max(2 * patience, patience + 5))
    rerun = (f"rerun with another seed (--seed {seed + 1}, or --seeds 5 for a mean and spread) or more patience "
             f"(--patience {more} --min-epochs {max(config.get('min_epochs', 0), epochs // 2)})")
    text = f"run {run.pk} looks like a collapse: {'; '.join(signs)}. Likely cause: {cause}. {rerun.capitalize()}."
    return {"signs": signs, "cause": cause, "rerun": rerun, "text": text}
