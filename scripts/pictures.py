"""The README's pictures from a finished run: the headline figure and the static explorer, as PNG.

    python scripts/pictures.py outputs/embedded --out docs/img      (what `make pictures` runs)

Both are screenshots by headless Debian Chromium (Playwright, the browser the tests use), of
pages made offline from the run's files: the headline figure (best multi vs best single per
task, as notebook 08 draws it) drawn with the run's own ``reports/plotly.min.js``, and
``reports/explorer.html`` on its first example. Every request off the page's folder is refused.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

CHROMIUM = os.environ.get("MTKD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _local_only(page) -> None:
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "about:"))
               else r.abort())


def headline_page(run_dir: Path, folder: Path) -> Path:
    """An HTML page with the headline figure (the primary comparisons, as notebook 08 draws them), beside a
    copy of the run's plotly.js."""
    import pandas as pd
    import plotly.io as pio

    from mtkd.report import figures
    from mtkd.report.pages import ensure_plotly_js
    comp = pd.read_csv(run_dir / "comparisons.csv")
    fig = figures.advantage_bars(comp[comp["family"] == "primary"], title=figures.PRIMARY_TITLE)
    fig.update_layout(width=900, height=480)
    ensure_plotly_js(folder)
    page = folder / "headline.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><script src="plotly.min.js"></script></head>'
                    '<body style="margin:0;background:white">'
                    + pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"staticPlot": True})
                    + "</body></html>")
    return page


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a finished run folder (with reports/explorer.html)")
    ap.add_argument("--out", type=Path, default=Path("docs/img"), help="where the PNGs go")
    args = ap.parse_args(argv)
    run_dir = args.run_dir.resolve()
    explorer = run_dir / "reports" / "explorer.html"
    if not (run_dir / ".complete").exists() or not explorer.exists():
        print(f"pictures: {run_dir} is not a finished run with reports/explorer.html; run `mtkd run PARAMS.yaml "
              f"--out {run_dir}` first", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"pictures: no Chromium at {CHROMIUM}; run scripts/install-chromium.sh or set MTKD_CHROMIUM",
              file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 480}, device_scale_factor=2)
            _local_only(page)
            page.goto(headline_page(run_dir, Path(tmp)).as_uri(), wait_until="load")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            page.locator(".js-plotly-plot").first.screenshot(path=str(args.out / "headline.png"))
            page.close()
            page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=2)
            _local_only(page)
            page.goto(explorer.as_uri(), wait_until="load")
            page.wait_for_selector(".mtkd-explorer-example[data-idx]", timeout=30_000)
            page.screenshot(path=str(args.out / "explorer.png"))
            page.close()
        finally:
            browser.close()
    for name in ("headline.png", "explorer.png"):
        print(f"pictures: {args.out / name} ({(args.out / name).stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
