"""Seeds as a first-class option: `train_classifier` / `retrain --seeds K` (and the retrain form) queue K runs of
the same settings with seeds seed, seed + 1, ... as one run group (Run.group); the comparison and the command
report the group's mean, spread and worst run. On small train splits one run says little: the same settings move
by several points between seeds."""
import statistics

from curation.jobs.errors import JobParamsError
from curation.models import Run

SEEDS_MAX = 20
SMALL_TRAIN = 5000  # the retrain form offers seeds below this many train images


def check_seeds(value):
    """K as an int in 1-SEEDS_MAX; JobParamsError naming the value otherwise."""
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise JobParamsError(f"seeds must be a whole number 1-{SEEDS_MAX}, not {value!r}") from None
    if not 1 <= k <= SEEDS_MAX:
        raise JobParamsError(f"seeds must be 1-{SEEDS_MAX}, not {k}")
    return k


def group_summary(group):
    """{"group", "runs", "n", "mean", "spread" (sample standard deviation), "min", "max", "worst" (run id)} of a
    run group's finished runs' test accuracy, or None when none has finished."""
    runs = [r for r in Run.objects.filter(group=group, status=Run.Status.SUCCEEDED).order_by("id") if r.test_metrics]
    if not group or not runs:
        return None
    acc = [r.test_metrics["accuracy"] for r in runs]
    worst = min(runs, key=lambda r: r.test_metrics["accuracy"])
    return {"group": group, "runs": [r.pk for r in runs], "n": len(runs), "mean": statistics.fmean(acc),
            "spread": statistics.stdev(acc) if len(acc) > 1 else 0.0, "min": min(acc), "max": max(acc),
            "worst": worst.pk, "seeds": [r.config.get("seed") for r in runs]}


def group_words(s):
    return (f"group {s['group']}: {s['n']} runs (seeds {', '.join(map(str, s['seeds']))}), test accuracy mean "
            f"{s['mean']:.4f}, spread (sd) {s['spread']:.4f}, range {s['min']:.4f}-{s['max']:.4f}, worst run "
            f"{s['worst']}")
