"""The import job: scan, carve missing splits, then validate, copy and record images in resumable batches.

Each batch's Image rows and the job's saved state (how far it got, what it counted) commit in one transaction,
so a worker killed mid-import leaves a consistent prefix, and the re-run continues after it without adding a row
twice. Files are copied before their rows are written; a copy without a row is rewritten by the re-run. A batch
with test images forgets the stored leak report (its test split hash) and the job's end recomputes it.
"""
import os
from collections import Counter
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count

from curation.duplicates.leaks import leaks_refresh, leaks_stale
from curation.importers.sources import SCANNERS, Candidate, ImportSourceError, Notice, Skip
from curation.importers.validate import BadFile, read_image
from curation.jobs.errors import JobParamsError
from curation.models import Dataset, Image
from training.labels import CLASSES

BATCH = 64
MAX_NAMED_PROBLEMS = 10_000  # counts are always complete; beyond this many, files are counted but not named


def carve_splits(candidates, *, has_test, has_val, test_fraction, val_fraction, seed):
    """Give every candidate without a split one: stratified by label, seeded, deterministic for the same input.

    The test split is carved only where the dataset brings none; validation likewise, from the training pool.
    """
    rng = np.random.default_rng(seed)
    carve_test = not has_test and not any(c.split == "test" for c in candidates)
    carve_val = not has_val and not any(c.split == "val" for c in candidates)
    for label in range(len(CLASSES)):
        pool = [c for c in candidates if c.label == label and c.split in (None, "train")]
        order = rng.permutation(len(pool))
        pool = [pool[i] for i in order]
        n_test = int(np.floor(test_fraction * len(pool) + 0.5)) if carve_test else 0
        for c in pool[:n_test]:
            c.split = "test"
        rest = pool[n_test:]
        n_val = int(np.floor(val_fraction * len(pool) + 0.5)) if carve_val else 0
        for c in rest[:n_val]:
            c.split = "val"
    for c in candidates:
        if c.split is None:
            c.split = "train"
    return {"test": carve_test, "val": carve_val}


def _store(dataset_name, rel, data):
    dest_rel = f"datasets/{dataset_name}/{rel}"
    dest = Path(settings.MEDIA_ROOT) / dest_rel
    if not (dest.exists() and dest.stat().st_size == len(data)):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    return dest_rel


def import_dataset_job(ctx):
    p = ctx.params
    ctx.progress(0.0, "scanning", force=True)
    candidates, problems, skips, notices = [], [], Counter(), []
    try:
        for item in SCANNERS[p["format"]](p["path"]):
            if isinstance(item, Candidate):
                candidates.append(item)
            elif isinstance(item, Skip):
                skips[item.reason] += 1
            elif isinstance(item, Notice):
                notices.append(item)
            else:
                problems.append(item)
            if (len(candidates) + len(problems)) % 500 == 0:
                ctx.progress(0.0, f"scanning: {len(candidates)} files found")
    except ImportSourceError as exc:
        raise JobParamsError(str(exc)) from None
    # A new dataset is saved with its first stored image, so an import that stores nothing (a wrong format, no
    # usable file) leaves no empty dataset behind to claim the name (or tie it to the wrong format).
    defaults = {"format": p["format"], "source": p["path"], "split_seed": p["seed"],
                "test_fraction": p["test_fraction"], "val_fraction": p["val_fraction"]}
    dataset = Dataset.objects.filter(name=p["name"]).first() or Dataset(name=p["name"], **defaults)

    def images():
        return dataset.images.all() if dataset.pk else Image.objects.none()

    carved = carve_splits(
        candidates,
        has_test=images().filter(split="test").exists(),
        has_val=images().filter(split="val").exists(),
        test_fraction=dataset.test_fraction,
        val_fraction=dataset.val_fraction,
        seed=dataset.split_seed,
    )
    state = ctx.state or {}
    done = state.get("done", 0)
    counts = Counter(state.get("counts", {}))
    bad = list(state.get("bad", []))
    bad_counts = Counter(state.get("bad_counts", {}))
    seen_hash = {}  # hashes added by this attempt; earlier batches and attempts are found in the database
    total = len(candidates)
    max_bytes, max_pixels = settings.IMPORT_MAX_FILE_BYTES, settings.IMPORT_MAX_PIXELS

    def problem(path, reason, detail):
        bad_counts[reason] += 1
        if len(bad) < MAX_NAMED_PROBLEMS:
            bad.append({"path": path, "reason": reason, "detail": detail})

    while done < total:
        batch = candidates[done : done + BATCH]
        checked = []
        for c in batch:
            try:
                img = read_image(c.source, data=c.data, max_bytes=max_bytes, max_pixels=max_pixels)
            except BadFile as exc:
                problem(c.path, exc.reason, exc.detail)
                continue
            checked.append((c, img))
        existing = images().filter(content_hash__in=[img.sha256 for _, img in checked])
        stored = {h: (path, label) for h, path, label in existing.values_list("content_hash", "path", "original_label")}
        existing_by_hash = {h: path for h, (path, _) in stored.items()}
        existing_by_path = dict(
            images().filter(path__in=[c.path for c, _ in checked]).values_list("path", "content_hash")
        )
        rows = []
        for c, img in checked:
            if existing_by_hash.get(img.sha256) == c.path:
                counts["already_present"] += 1
                if stored[img.sha256][1] != c.label:
                    # Re-import changes nothing stored; label changes go through review, so say what was ignored.
                    counts["already_present_other_label"] += 1
            elif c.path in existing_by_path:
                problem(c.path, "changed_since_import", "a different file was imported from this path before; kept the earlier one")
            elif img.sha256 in existing_by_hash or img.sha256 in seen_hash:
                first = existing_by_hash.get(img.sha256) or seen_hash[img.sha256]
                problem(c.path, "duplicate", f"same content as {first}")
            else:
                seen_hash[img.sha256] = c.path
                rows.append(
                    Image(
                        dataset=dataset,
                        path=c.path,
                        file=_store(dataset.name, c.path, img.data),
                        content_hash=img.sha256,
                        width=img.width,
                        height=img.height,
                        split=c.split,
                        original_label=c.label,
                        label=c.label,
                    )
                )
        done += len(batch)
        counts["added"] += len(rows)
        for r in rows:
            counts[f"added_{r.split}"] += 1
        with transaction.atomic():
            if rows and dataset.pk is None:
                dataset, _ = Dataset.objects.get_or_create(name=p["name"], defaults=defaults)
                for r in rows:
                    r.dataset = dataset
            Image.objects.bulk_create(rows)
            if any(r.split == Image.Split.TEST for r in rows):
                leaks_stale(dataset)  # the stored test split's hash is refreshed at the end (or on the next read)
            ctx.save_state(
                {
                    "done": done,
                    "counts": dict(counts),
                    "bad": bad,
                    "bad_counts": dict(bad_counts),
                }
            )
        ctx.progress(done / max(total, 1), f"imported {done} of {total} files")

    for pr in problems:
        problem(pr.path, pr.reason, pr.detail)
    files_found = total + len(problems) + sum(skips.values())
    if dataset.pk is None:
        raise JobParamsError(_nothing_usable(p["name"], files_found, bad_counts, bad, skips))
    if counts["added_test"]:
        leaks_refresh(dataset)  # new test images: the dataset page's leak panel has a new test split hash
    splits = dict(dataset.images.order_by().values("split").annotate(n=Count("id")).values_list("split", "n"))
    result = {
        "dataset": dataset.name,
        "format": p["format"],
        "source": p["path"],
        "files_found": files_found,
        "added": counts["added"],
        "added_by_split": {s: counts[f"added_{s}"] for s in ("train", "val", "test")},
        "already_present": counts["already_present"],
        "already_present_other_label": counts["already_present_other_label"],
        "skipped_not_emotion": dict(skips),
        "bad_count": sum(bad_counts.values()),
        "bad_counts": dict(bad_counts),
        "bad": bad,
        "carved": carved,
        "dataset_splits": splits,
    }
    if p["format"] in ("csv", "fer2013"):
        result["manifest_encoding"] = "utf-8"
    for notice in notices:
        result[notice.key] = notice.value
    if notices:
        result["warning"] = "; ".join(n.message for n in notices)
    return result


def _nothing_usable(name, files_found, bad_counts, bad, skips):
    """One line: why an import stored no image, so no dataset was created."""
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(bad_counts.items()))
    why += ", ".join([""] + [f"{n} skipped as {reason}" for reason, n in sorted(skips.items())]) if skips else ""
    first = f"; first: {bad[0]['path']}: {bad[0]['detail']}" if bad else ""
    return (f"no usable image among {files_found} file(s) ({why or 'none found'}){first}; dataset {name!r} was not "
            f"created, so the name is still free")
