"""Prototype measurement for issue 34 item 5 (not a test; prints figures, asserts nothing): what moving the 14
scoring signals off Image into their own table, keyed by image and scoring, would cost the two reads that touch
every image: the review queue's claim (the candidate SELECT ... FOR UPDATE SKIP LOCKED of image_claim_next) and the
CSV export's query (dataset_export_rows).

Copies a scored throwaway dataset of N images into PostgreSQL (COPY, every signal filled), then copies its signals
into a side table shaped as the move would make it (one row per image and scoring: the current scoring's and,
with --scorings 2, an older one's; primary key (image_id, scoring_id), an index on (scoring_id, suspicion DESC,
image_id) for the queue's order). Each read runs as the product issues it today (the ORM's own SQL) and with the
signals joined from the side table instead, alternating, in the same process and on the same data:

- the claim's candidate query, R times each in a transaction that is rolled back, at two stages of the review: none
  reviewed, and the top --reviewed share of the queue (by suspicion) reviewed, as a review campaign leaves it;
- the export query, read whole through a server-side cursor, --repeat times each.

The side table is a temporary table; the dataset and its images are deleted at the end.

    python -m benchmarks.signals_table --images 300000
"""
import argparse
import random
import statistics
import time
import uuid

from benchmarks._django import setup

setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from curation.models import Dataset, Image  # noqa: E402
from curation.review.selectors import claimable, review_queue  # noqa: E402
from curation.selectors import dataset_export_rows  # noqa: E402

SIGNALS = ("ambiguity", "suspicion", "flagged", "gan_score", "gan_suggested_label", "label_quality",
           "classifier_flagged", "classifier_suggested_label", "datalab_label_quality", "datalab_label_issue",
           "datalab_outlier_score", "datalab_outlier", "datalab_near_duplicate_score", "datalab_near_duplicates")
SIDE = "bench_image_signals"
CURRENT = 2  # the current scoring's id in the side table; 1 is the older one (--scorings 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=(
        "Claim and export queries with the scoring signals on Image (today) against joined from a side table "
        "keyed by (image, scoring). PostgreSQL only."))
    parser.add_argument("--images", type=int, default=300_000)
    parser.add_argument("--claims", type=int, default=300, help="candidate queries per layout and stage")
    parser.add_argument("--repeat", type=int, default=3, help="export reads per layout")
    parser.add_argument("--reviewed", type=float, default=0.1,
                        help="share of the scored queue reviewed (from the top) in the second stage (0-0.9)")
    parser.add_argument("--scorings", type=int, choices=(1, 2), default=2,
                        help="scorings kept in the side table (2: the current one and an older one)")
    opts = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        raise SystemExit(f"benchmarks.signals_table needs PostgreSQL (this database is {connection.vendor}): set "
                         f"DATABASE_URL=postgres://... .")
    for name in ("images", "claims", "repeat"):
        if getattr(opts, name) < 1:
            raise SystemExit(f"--{name} must be at least 1 (got {getattr(opts, name)})")
    if not 0 <= opts.reviewed <= 0.9:
        raise SystemExit(f"--reviewed must be between 0 and 0.9 (got {opts.reviewed})")
    tag = uuid.uuid4().hex[:8]
    user = get_user_model().objects.create_user(username=f"bench-signals-{tag}")
    dataset = Dataset.objects.create(name=f"bench-signals-{tag}", format=Dataset.Format.CSV, source="bench_signals",
                                     audit_share=0.0)
    try:
        t0 = time.perf_counter()
        _seed(dataset, opts.images)
        _side_table(dataset, opts.scorings)
        print(f"database: PostgreSQL {connection.cursor().connection.info.server_version} "
              f"({connection.settings_dict['NAME']}); {opts.images:,} images and {opts.scorings} scoring(s) in the "
              f"side table, seeded in {time.perf_counter() - t0:.1f} s")
        print("signals on Image (today) against joined from the side table (the move); ratio: joined / on Image")
        print(f"{'read':44s} {'signals':9s} {'n':>5s} {'p50 ms':>9s} {'p95 ms':>9s} {'p50 ratio':>9s} "
              f"{'p95 ratio':>9s}")
        _claims(dataset, user, opts.claims, "claim candidate, none reviewed")
        _review_top(dataset, opts.reviewed)
        _claims(dataset, user, opts.claims, f"claim candidate, top {opts.reviewed:.0%} reviewed")
        _export(dataset, opts.repeat)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {SIDE}")
            cursor.execute(f"DELETE FROM {Image._meta.db_table} WHERE dataset_id = %s", [dataset.pk])
        dataset.delete()
        user.delete()


def _seed(dataset, n):
    """COPY n images, 90 % scored with every signal filled (as after a full scoring with Datalab)."""
    rng = random.Random(0)
    now = timezone.now()
    cols = ("dataset_id", "path", "file", "content_hash", "width", "height", "split", "original_label", "label",
            "status", "version", "flagged", "classifier_flagged", "disputed", "created_at", "updated_at",
            "datalab_label_issue", "datalab_outlier", "datalab_near_duplicates", "audit_key", "audit",
            "ambiguity", "suspicion", "gan_score", "gan_suggested_label", "label_quality",
            "classifier_suggested_label", "datalab_label_quality", "datalab_outlier_score",
            "datalab_near_duplicate_score")
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {Image._meta.db_table} ({', '.join(cols)}) FROM STDIN") as copy:
            for i in range(n):
                label = rng.randrange(8)
                scored = rng.random() < 0.9

                def x():
                    return rng.random() if scored else None

                copy.write_row((
                    dataset.pk, f"{label}/img_{i:07d}.png", f"datasets/bench/{i}.png", f"{dataset.pk:08x}{i:056x}",
                    96, 96, "train" if rng.random() < 0.75 else "val", label, label, "unreviewed", 1,
                    scored and rng.random() < 0.1, scored and rng.random() < 0.1, False, now, now,
                    scored and rng.random() < 0.05, scored and rng.random() < 0.02,
                    "[]" if not scored or rng.random() < 0.97 else f"[{rng.randrange(n)}]", rng.random(), False,
                    x(), x(), x(), rng.randrange(8) if scored else None, x(), rng.randrange(8) if scored else None,
                    x(), x(), x(),
                ))
        cursor.execute(f"ANALYZE {Image._meta.db_table}")


def _side_table(dataset, scorings):
    """The signals as the move would keep them: one row per (image, scoring), copied from the images."""
    columns = {f.name: f for f in Image._meta.get_fields() if f.name in SIGNALS}
    with connection.cursor() as cursor:
        types = ", ".join(f"{name} {columns[name].db_type(connection)}" for name in SIGNALS)
        cursor.execute(f"CREATE TEMPORARY TABLE {SIDE} (image_id bigint NOT NULL, scoring_id integer NOT NULL, "
                       f"{types}, PRIMARY KEY (image_id, scoring_id))")
        names = ", ".join(SIGNALS)
        cursor.execute(f"INSERT INTO {SIDE} (image_id, scoring_id, {names}) SELECT id, {CURRENT}, {names} "
                       f"FROM {Image._meta.db_table} WHERE dataset_id = %s", [dataset.pk])
        if scorings == 2:  # an older scoring's rows beside the current one's (other suspicions)
            older = ", ".join("random()" if name == "suspicion" else name for name in SIGNALS)
            cursor.execute(f"INSERT INTO {SIDE} (image_id, scoring_id, {names}) SELECT id, 1, {older} "
                           f"FROM {Image._meta.db_table} WHERE dataset_id = %s", [dataset.pk])
        cursor.execute(f"CREATE INDEX ON {SIDE} (scoring_id, suspicion DESC, image_id)")
        cursor.execute(f"ANALYZE {SIDE}")


def _joined(sql):
    """The product's SQL with every signal read from the current scoring's row in the side table."""
    table = f'"{Image._meta.db_table}"'
    joined = sql.replace(f" FROM {table} ", f" FROM {table} INNER JOIN {SIDE} s ON (s.image_id = {table}.\"id\" "
                                            f"AND s.scoring_id = {CURRENT}) ", 1)
    for name in SIGNALS:
        joined = joined.replace(f'{table}."{name}"', f's."{name}"')
    assert joined != sql and " INNER JOIN " in joined, "the product's SQL no longer has the expected shape"
    return joined


def _percentiles(values):
    ordered = sorted(values)
    return (statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000)


def _claims(dataset, user, n, what):
    """The candidate query of image_claim_next's default queue (scored images, most suspicious first) as the ORM
    writes it, and joined; each run in its own transaction, rolled back, the two layouts alternating."""
    qs = (claimable(review_queue(user=user, dataset=dataset), now=timezone.now())
          .filter(suspicion__isnull=False).order_by("-suspicion", "id")
          .select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:1])
    with transaction.atomic():  # FOR UPDATE compiles only inside one
        sql, params = qs.query.sql_with_params()
    layouts = {"on Image": sql, "joined": _joined(sql)}
    times = {name: [] for name in layouts}
    picked = {}
    for i in range(n):
        for name, query in layouts.items():
            with transaction.atomic(), connection.cursor() as cursor:
                t = time.perf_counter()
                cursor.execute(query, params)
                row = cursor.fetchone()
                times[name].append(time.perf_counter() - t)
                picked.setdefault(name, row)
                transaction.set_rollback(True)
    if len(set(picked.values())) != 1:
        raise SystemExit(f"the two layouts picked different images: {picked}")
    _print(what, times)


def _review_top(dataset, share):
    """Mark the top `share` of the scored queue reviewed, as a review campaign from the top leaves it."""
    with connection.cursor() as cursor:
        table = Image._meta.db_table
        cursor.execute(f"SELECT count(*) FROM {table} WHERE dataset_id = %s AND suspicion IS NOT NULL", [dataset.pk])
        k = int(cursor.fetchone()[0] * share)
        cursor.execute(f"UPDATE {table} SET status = 'confirmed' WHERE id IN (SELECT id FROM {table} WHERE "
                       f"dataset_id = %s AND suspicion IS NOT NULL ORDER BY suspicion DESC, id LIMIT %s)",
                       [dataset.pk, k])
        cursor.execute(f"ANALYZE {table}")


def _export(dataset, repeat):
    """dataset_export_rows' query read whole through a server-side cursor, as the export streams it, and joined."""
    seen = []

    def capture(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    rows = dataset_export_rows(dataset=dataset)
    with connection.execute_wrapper(capture):
        next(rows)  # the export's own query, as it issues it
    rows.close()
    sql, params = next((q, p) for q, p in seen if "ORDER BY" in q)
    layouts = {"on Image": sql, "joined": _joined(sql)}
    times = {name: [] for name in layouts}
    counts = {}
    for _ in range(repeat):
        for name, query_sql in layouts.items():
            with transaction.atomic():
                cursor = connection.connection.cursor(name=f"export_{uuid.uuid4().hex[:8]}")
                t = time.perf_counter()
                cursor.execute(query_sql, params)
                rows = 0
                while batch := cursor.fetchmany(2000):
                    rows += len(batch)
                times[name].append(time.perf_counter() - t)
                cursor.close()
                counts[name] = rows
    if len(set(counts.values())) != 1:
        raise SystemExit(f"the two layouts read different numbers of rows: {counts}")
    _print(f"export query, {next(iter(counts.values())):,} rows", times)


def _print(what, times):
    base = _percentiles(next(iter(times.values())))
    for index, (name, values) in enumerate(times.items()):
        p50, p95 = _percentiles(values)
        ratios = f"{p50 / base[0]:9.2f} {p95 / base[1]:9.2f}" if index else ""
        print(f"{what:44s} {name:9s} {len(values):5d} {p50:9.2f} {p95:9.2f} {ratios}".rstrip())


if __name__ == "__main__":
    main()
