"""A dataset whose embeddings form clusters, imported the way a user brings their own model's embeddings
(import_predictions --embeddings, feeding the queue), for the dataset map's tests.

Each label is a cluster: its centre on a circle of radius 10 in the first two of DIMS dimensions, spread 0.4 in all,
so the first two principal components are that circle's plane and the clusters lie apart on the map. Label 7
(contempt) has SMALL images, fewer than a grid page, so a lasso of it can be checked tile by tile."""
import io

import numpy as np
from django.core.management import call_command

from curation.models import Dataset, Image

DIMS = 16
SMALL = 40


def cluster_labels(n):
    """Labels 0-6 in turn for all but the last SMALL images, which are label 7."""
    return [i % 7 for i in range(n - SMALL)] + [7] * SMALL


def cluster_embeddings(labels, seed=0, radius=10.0):
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(8) / 8
    centres = np.zeros((8, DIMS))
    centres[:, 0], centres[:, 1] = radius * np.cos(angles), radius * np.sin(angles)
    return (centres[labels] + rng.normal(0, 0.4, (len(labels), DIMS))).astype(np.float32)


def clustered_dataset(tmp_path, *, name="mapped", n=200, seed=0, suspicion=True):
    """Dataset `name`: n train images img0..img{n-1} (labels cluster_labels(n)) and 2 test images, and the model
    feeding its queue imported with clustered embeddings. Returns the dataset."""
    ds = Dataset.objects.create(name=name, source=str(tmp_path), format="csv")
    labels = cluster_labels(n)
    rng = np.random.default_rng(seed)
    Image.objects.bulk_create([
        Image(dataset=ds, path=f"img{i}.png", file=f"datasets/{name}/img{i}.png", content_hash=f"{i:064x}",
              width=64, height=64, split=Image.Split.TRAIN, original_label=label, label=label,
              suspicion=float(rng.random()) if suspicion and i % 5 else None,
              classifier_suggested_label=(label + 1) % 8 if i % 10 == 0 else None)
        for i, label in enumerate(labels)], batch_size=2000)
    for i in range(2):
        Image.objects.create(dataset=ds, path=f"test{i}.png", file=f"datasets/{name}/test{i}.png",
                             content_hash=f"t{i:063x}", width=64, height=64, split=Image.Split.TEST,
                             original_label=i, label=i)
    import_embeddings(tmp_path, ds, cluster_embeddings(labels, seed=seed), labels)
    return ds


def import_embeddings(tmp_path, ds, embeddings, labels, tag="a"):
    """import_predictions (inline) of probabilities peaked on each image's label, with `embeddings` (train images in
    id order), feeding the queue."""
    paths = list(Image.objects.filter(dataset=ds, split=Image.Split.TRAIN).order_by("id").values_list("path", flat=True))
    probs = np.full((len(paths), 8), 0.02)
    probs[np.arange(len(paths)), labels] = 0.86
    csv = tmp_path / f"preds-{ds.name}-{tag}.csv"
    csv.write_text("path,p0,p1,p2,p3,p4,p5,p6,p7\n" + "".join(
        f"{p}," + ",".join(f"{v:.2f}" for v in row) + "\n" for p, row in zip(paths, probs)))
    npy = tmp_path / f"emb-{ds.name}-{tag}.npy"
    np.save(npy, embeddings)
    call_command("import_predictions", str(csv), "--dataset", ds.name, "--embeddings", str(npy), "--out-of-sample",
                 "--feed-queue", "--inline", stdout=io.StringIO(), stderr=io.StringIO())
