"""The first-hour tour of a running demo (`make demo`, once it has printed "The demo is ready."), as its users would
take it, in the system Chromium and through the REST API:

    .venv/bin/python scripts/demo_tour.py --url http://127.0.0.1:8000 --out docs/img

1. A reviewer's morning (`--decide N`, default 300; 0 skips it): N decisions from the top of the review queue through
   the product's own review path (POST /api/review/next/, then /api/images/<id>/decision/), each made by the demo's
   truth.csv (confirm a right label, relabel a wrong one to its true label), a share `--error-rate` of them (default
   0.05) made wrong on purpose, as a tired reviewer would.
2. Screenshots of the review card, the grid, the dataset page (with its known-truth panel), its health report, its
   map, the jobs page and the retrain form with its preview: review_queue.png, review_grid.png, dataset_page.png,
   health_report.png, map.png, jobs_page.png and retrain_form.png, written into --out only once each rendered.
3. Unless `--no-retrain`: the curator starts "Retrain on cleaned labels" with the form's defaults, waits for it, and
   reads the run comparison against run 1 (the demo's first run), which it prints with its paired test (McNemar) and
   shoots as run_compare.png; and fetches the export (the cleaned labels' CSV), saying how many rows it has.

Decisions and the retrain change the demo (as a user's would): rerun it on a fresh demo to remake the same figures.
"""
import argparse
import csv
import json
import random
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 30_000
MIN_BYTES = 10_000  # a blank page is a few KiB
SHOTS = {"review_queue.png", "review_grid.png", "dataset_page.png", "health_report.png", "map.png", "jobs_page.png",
         "retrain_form.png"}
LABELS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
RETRAIN_WAIT_S = 3600


class Api:
    """The product's REST API under a token, with the standard library only."""

    def __init__(self, url, user, password):
        self.url = url
        self.token = self.call("POST", "/api/auth/token/", {"username": user, "password": password})["token"]

    def call(self, method, path, body=None):
        accept = "text/csv" if path.split("?")[0].endswith(".csv") else "application/json"
        headers = {"Content-Type": "application/json", "Accept": accept}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Token {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw, kind = response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            sys.exit(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:500]}")
        return json.loads(raw) if kind == "application/json" else raw


def decide(api, *, dataset, truth, n, error_rate, seed=0):
    """A reviewer's morning: n decisions from the top of the review queue, by the known truth ({path: true label}),
    a share error_rate of them wrong on purpose. Returns counts of what was decided."""
    rng = random.Random(seed)
    counts = {"decided": 0, "wrong_labels_met": 0, "confirmed": 0, "relabelled": 0, "mistakes": 0}
    for _ in range(n):
        claim = api.call("POST", "/api/review/next/", {"dataset": dataset})
        image = claim.get("image") if isinstance(claim, dict) else None
        if not image:
            break  # the queue is empty
        given, true = image["label"], truth[image["path"]]
        counts["wrong_labels_met"] += given != true
        verdict = true
        if rng.random() < error_rate:  # a mistake: confirm a wrong label, or relabel a right one to another class
            counts["mistakes"] += 1
            verdict = given if given != true else rng.choice([name for name in LABELS if name != given])
        if verdict == given:
            body = {"action": "confirm", "version": image["version"]}
            counts["confirmed"] += 1
        else:
            body = {"action": "relabel", "label": verdict, "version": image["version"]}
            counts["relabelled"] += 1
        api.call("POST", f"/api/images/{image['id']}/decision/", body)
        counts["decided"] += 1
    return counts


def read_truth(path):
    with open(path, newline="") as f:
        return {row["path"]: row["true_label"] for row in csv.DictReader(f)}


def wait_job(api, job):
    """The job once finished; exits unless it succeeded."""
    started = time.monotonic()
    while job["status"] in ("queued", "running"):
        if time.monotonic() - started > RETRAIN_WAIT_S:
            sys.exit(f"job {job['id']} did not finish in {RETRAIN_WAIT_S} s")
        time.sleep(10)
        job = api.call("GET", f"/api/jobs/{job['id']}/")
    if job["status"] != "succeeded":
        sys.exit(f"job {job['id']} {job['status']}: {job['message']}")
    return job


def newest_run(api, dataset):
    return max(r["id"] for r in api.call("GET", f"/api/runs/?dataset={dataset}")["results"])


def retrain_and_compare(page, api, url, out, *, dataset, also_doubtful=None):
    """Start the retrain form with its defaults, wait for its run, and read the comparison with run 1; with
    `also_doubtful`, then a retrain through the jobs API that differs only in its doubtful rule, compared too. Returns
    [{"job", "run", "doubtful", "accuracy", "test", "p"}] and run 1's accuracy."""
    before = {j["id"] for j in api.call("GET", "/api/jobs/?kind=train_classifier")["results"]}
    page.goto(f"{url}/jobs/?start=retrain&dataset={dataset}")
    page.wait_for_selector("#retrain-preview li[data-preview=train]")
    page.click("#start-retrain button[name=action][value=start]")
    page.wait_for_selector(".notice-success")
    (job,) = [j for j in api.call("GET", "/api/jobs/?kind=train_classifier")["results"] if j["id"] not in before]
    jobs = [wait_job(api, job)]
    runs = [newest_run(api, dataset)]
    if also_doubtful:
        params = {**jobs[0]["params"], "doubtful": also_doubtful}  # derived from the same run as the form's
        jobs.append(wait_job(api, api.call("POST", "/api/jobs/", {"kind": "retrain", "params": params})))
        runs.append(newest_run(api, dataset))
    page.goto(f"{url}/runs/compare/?" + "&".join(f"ids={r}" for r in (1, *runs)))
    page.wait_for_selector("#summary")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "run_compare.png"), full_page=True)
    rows = []
    for job, run in zip(jobs, runs):
        delta = page.locator(f"tr[data-metric=accuracy] td[data-run='{run}'] .delta")
        rows.append({"job": job["id"], "run": run, "doubtful": job["params"].get("doubtful"),
                     "accuracy": page.inner_text(f"tr[data-metric=accuracy] td[data-run='{run}']").strip(),
                     "test": delta.get_attribute("title"), "p": delta.get_attribute("data-p")})
    return {"baseline": page.inner_text("tr[data-metric=accuracy] td[data-run='1']").strip(), "runs": rows}


def tour(url, out, *, user, password, dataset, retrain=None, also_doubtful=None):
    """The screenshots (see the module's docstring); with `retrain` (the curator's Api), the retrain and its
    comparison, whose figures it returns."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/login/?next=/")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/")

            page.goto(f"{url}/review/?dataset={dataset}")
            page.wait_for_selector("#card")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "review_queue.png"), full_page=True)

            page.goto(f"{url}/review/grid/?dataset={dataset}")
            page.wait_for_selector("#grid label.tile")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "review_grid.png"), full_page=False)

            page.goto(f"{url}/datasets/{dataset}/")
            page.wait_for_selector("#overview")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "dataset_page.png"), full_page=True)

            page.goto(f"{url}/datasets/{dataset}/health/")
            page.wait_for_selector("#health-report")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "health_report.png"), full_page=True)

            page.goto(f"{url}/datasets/{dataset}/map/")  # the demo's last stage computed it
            page.wait_for_selector("#map[data-points]")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "map.png"), full_page=True)

            page.goto(f"{url}/jobs/")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "jobs_page.png"), full_page=False)

            page.goto(f"{url}/jobs/?start=retrain&dataset={dataset}")
            page.wait_for_selector("#retrain-preview li[data-preview=train]")
            page.wait_for_load_state("networkidle")
            page.locator("#start-retrain").screenshot(path=str(out / "retrain_form.png"))
            if retrain is not None:
                return retrain_and_compare(page, retrain, url, out, dataset=dataset, also_doubtful=also_doubtful)
        finally:
            browser.close()
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running demo")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--user", default="curator")
    parser.add_argument("--password", default="curator")
    parser.add_argument("--reviewer", default="reviewer", help="who makes the morning's decisions (password: the same)")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--truth", type=Path, default=Path("var/demo/faces/truth.csv"),
                        help="the demo's known truth (path,true_label,...), which the scripted reviewer decides by")
    parser.add_argument("--decide", type=int, default=300, help="decisions from the top of the queue first (0: none)")
    parser.add_argument("--error-rate", type=float, default=0.05, help="share of the decisions made wrong on purpose")
    parser.add_argument("--no-retrain", action="store_true", help="screenshots only: no retrain, no comparison")
    parser.add_argument("--also-doubtful", choices=["ssim", "classifier", "either", "none"],
                        help="after the form's retrain, one more through the jobs API with only this doubtful rule "
                             "changed, compared with run 1 in the same comparison (what the default rule costs)")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    if args.decide:
        reviewer = Api(url, args.reviewer, args.reviewer)
        counts = decide(reviewer, dataset=args.dataset, truth=read_truth(args.truth), n=args.decide,
                        error_rate=args.error_rate)
        print("decided: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    curator = None if args.no_retrain else Api(url, args.user, args.password)
    work = Path(tempfile.mkdtemp(prefix="fer-tour-"))
    try:
        result = tour(url, work, user=args.user, password=args.password, dataset=args.dataset, retrain=curator,
                      also_doubtful=args.also_doubtful)
        shots = sorted(work.glob("*.png"))
        small = [f"{p.name} ({p.stat().st_size} bytes)" for p in shots if p.stat().st_size < MIN_BYTES]
        missing = SHOTS - {p.name for p in shots}
        if small or missing:
            sys.exit(f"not replacing anything: pages did not render: {', '.join(small) or ', '.join(sorted(missing))}")
        args.out.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copyfile(shot, args.out / shot.name)
            print(f"wrote {args.out / shot.name} ({shot.stat().st_size // 1024} KiB)")
        if result:
            print(f"test accuracy of run 1 (the baseline): {result['baseline']}")
            for r in result["runs"]:
                print(f"retrain job {r['job']} (doubtful rule {r['doubtful']}): run {r['run']} {r['accuracy']}; "
                      f"paired test: {r['test']}")
            rows = curator.call("GET", f"/api/datasets/{args.dataset}/export.csv").decode().count("\n") - 1
            print(f"export: {rows} rows of cleaned labels (GET /api/datasets/{args.dataset}/export.csv)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
