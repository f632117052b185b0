"""The screenshot tour from a running demo (`make demo`, once it has printed "The demo is ready."): the review card,
the grid, the dataset page (with its known-truth panel), its health report, its map and the jobs page, as the demo's curator
sees them, in the system Chromium:

    .venv/bin/python scripts/demo_tour.py --url http://127.0.0.1:8000 --out docs/img

It only reads pages (a card it shows is claimed under a lease, which runs out by itself) and writes
review_queue.png, review_grid.png, dataset_page.png, health_report.png, map.png and jobs_page.png into --out, each only once
it rendered.
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 30_000
MIN_BYTES = 10_000  # a blank page is a few KiB


def tour(url, out, *, user, password, dataset):
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
        finally:
            browser.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running demo")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--user", default="curator")
    parser.add_argument("--password", default="curator")
    parser.add_argument("--dataset", default="demo")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fer-tour-"))
    try:
        tour(args.url.rstrip("/"), work, user=args.user, password=args.password, dataset=args.dataset)
        shots = sorted(work.glob("*.png"))
        small = [f"{p.name} ({p.stat().st_size} bytes)" for p in shots if p.stat().st_size < MIN_BYTES]
        if small or len(shots) != 6:
            sys.exit(f"not replacing anything: pages did not render: {', '.join(small) or len(shots)}")
        args.out.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copyfile(shot, args.out / shot.name)
            print(f"wrote {args.out / shot.name} ({shot.stat().st_size // 1024} KiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
