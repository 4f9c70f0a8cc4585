"""The shared pages in a real browser (headless Debian Chromium via Playwright), from file:// with every
other request blocked: reports/explorer.html (filters change the shown example, counts match the run's
files) and reports/index.html (headline, every link opens a local page). Expected values are computed
here with NumPy from the fake run's files, not with mtkd."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import offline_page

from test_browser import _save_screenshot, browser  # noqa: F401  (the fixture)

try:
    from fake_run import write_fake_run
except ImportError:  # tests/ as a package
    from tests.fake_run import write_fake_run

pytestmark = pytest.mark.browser
SHOWN = ".mtkd-explorer-example[data-idx]:not(.mtkd-explorer-empty)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_fake_run(tmp_path_factory.mktemp("pages") / "run")


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _teachers(run_dir: Path, task: str, split: str):
    """(idx, probs (N, K, C)) from the logit files, teachers in the fusion file's order."""
    names = json.loads((run_dir / "fusion" / f"{task}.json").read_text())["teachers"]
    arrays = [np.load(run_dir / "logits" / task / t / f"{split}.npz") for t in names]
    return arrays[0]["idx"], _softmax(np.stack([a["logits"].astype(np.float64) for a in arrays], axis=1))


def _disagreement_order(idx, p):
    """Mean pairwise Jensen-Shannon divergence (nats), high first, ties by idx."""
    K = p.shape[1]
    kl = lambda a, b: (a * (np.log(a + 1e-12) - np.log(b + 1e-12))).sum(-1)
    js = [0.5 * kl(p[:, i], (p[:, i] + p[:, j]) / 2) + 0.5 * kl(p[:, j], (p[:, i] + p[:, j]) / 2)
          for i in range(K) for j in range(i + 1, K)]
    d = np.mean(js, axis=0)
    return np.lexsort((idx, -np.round(d, 9)))


def _select(page, name, value):
    page.locator(f'select[data-filter="{name}"]').select_option(value)


def _matching(page) -> int:
    return int(page.locator(".mtkd-count").get_attribute("data-matching"))


def test_static_explorer_offline(browser, run_dir, tmp_path):
    from mtkd.report.static_explorer import write_explorer
    target = write_explorer(run_dir)
    task, split = "toy3", "test"
    idx, p = _teachers(run_dir, task, split)
    order = _disagreement_order(idx, p)
    tpred = p.argmax(-1)
    all_agree = (tpred == tpred[:, :1]).all(1)
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    student = preds[(preds.task == task) & (preds.split == split) & (preds.method == "multi:average")
                    & (preds.seed == 42)].set_index("idx").loc[idx]
    wrong = (student["pred"] != student["label"]).to_numpy()

    page, remote, errors = offline_page(browser, 1400)
    try:
        page.goto(target.as_uri(), wait_until="load", timeout=60_000)
        page.wait_for_selector(SHOWN, timeout=20_000)
        shown = lambda: int(page.locator(SHOWN).get_attribute("data-idx"))
        assert page.locator(SHOWN).get_attribute("data-task") == task
        assert page.locator('select[data-filter="method"]').input_value() == "multi:average"
        assert _matching(page) == len(idx)
        assert shown() == idx[order[0]]                        # sorted by teacher disagreement
        page.locator('button[data-action="next"]').click()
        assert shown() == idx[order[1]]

        _select(page, "region", "all_agree")
        agree_order = [i for i in order if all_agree[i]]
        assert _matching(page) == int(all_agree.sum())
        assert shown() == idx[agree_order[0]] and shown() != idx[order[0]]
        assert "all agree" in page.locator(SHOWN).inner_text()

        _select(page, "correctness", "wrong")
        hits = [i for i in order if all_agree[i] and wrong[i]]
        assert _matching(page) == len(hits) and shown() == idx[hits[0]]
        _select(page, "category", "all_teachers_wrong")       # all agree and the student wrong: teachers wrong too?
        cause = [i for i in hits if tpred[i, 0] != student["label"].to_numpy()[i]]
        assert _matching(page) == len(cause)

        _select(page, "region", "any")
        _select(page, "correctness", "any")
        _select(page, "category", "any")
        _select(page, "sort", "idx")
        assert shown() == int(idx.min())
        _select(page, "task", "toy2")
        idx2, _ = _teachers(run_dir, "toy2", "test")
        assert page.locator(SHOWN).get_attribute("data-task") == "toy2" and _matching(page) == len(idx2)
        _select(page, "split", "selection")
        idx3, _ = _teachers(run_dir, "toy2", "selection")
        assert _matching(page) == len(idx3) and shown() == int(idx3.min())
        assert page.locator(SHOWN).locator("text=gate weights over teachers").count() == 1
        _save_screenshot(page, tmp_path, "static-explorer.png", full_page=True)
    finally:
        page.close()
    assert not remote, f"explorer.html asked the network for {sorted(set(remote))[:5]}"
    assert not errors, f"JavaScript errors in explorer.html: {errors[:3]}"


def test_index_offline_and_links(browser, run_dir, tmp_path):
    from mtkd.report.pages import write_index
    from mtkd.report.static_explorer import write_explorer
    comp = pd.read_csv(run_dir / "comparisons.csv")
    summary = pd.read_csv(run_dir / "summary.csv").set_index(["task", "method"])
    sm = {"protocol": "chosen on the selection split, reported on test", "tasks": {}}
    for c in comp.itertuples():
        sm["tasks"][c.task] = {"metric": summary.loc[(c.task, c.b), "metric"],
                               "best_single": {"method": c.b, "mean": summary.loc[(c.task, c.b), "mean"]},
                               "best_multi": {"method": c.a, "mean": summary.loc[(c.task, c.a), "mean"]},
                               "multi_advantage_pp": {"diff_pp": c.diff_pp, "ci_low": c.ci_low, "ci_high": c.ci_high,
                                                      "p_adjusted": c.p_adjusted, "mde_pp": 4.0,
                                                      "verdict": "inconclusive",
                                                      "in_words": f"inconclusive: [{c.ci_low:.2f}, {c.ci_high:.2f}] "
                                                                  "is wider than +-1 pp"},
                               "gap_closed": {"best_multi": 0.5}, "verdict": "inconclusive"}
    (run_dir / "success_metrics.json").write_text(json.dumps(sm))
    reports = run_dir / "reports"
    listing = []
    for name, title in (("01_teachers", "01 · Data and teachers"), ("08_summary", "08 · Summary")):
        (reports / f"{name}.html").parent.mkdir(parents=True, exist_ok=True)
        (reports / f"{name}.html").write_text(f"<html><body><h1>{title}</h1></body></html>")
        (reports / f"{name}.ipynb").write_text("{}")
        listing.append({"name": name, "title": title, "status": "executed", "seconds": 3.25})
    write_explorer(run_dir)
    index = write_index(run_dir, listing, total_seconds=12.0)

    page, remote, errors = offline_page(browser, 1300)
    try:
        page.goto(index.as_uri(), wait_until="load", timeout=30_000)
        text = page.locator("body").inner_text()
        for c in comp.itertuples():
            assert c.task in text and c.a in text and f"{c.diff_pp:.2f}" in text     # headline verdicts
        assert "Main table" in text and "run_name" in text and "12 s" in text
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        assert {"01_teachers.html", "08_summary.html", "explorer.html", "01_teachers.ipynb"} <= set(hrefs)
        for href in hrefs:
            assert not re.match(r"^(https?:)?//", href), href
            assert (reports / href).exists(), f"index.html links to a missing {href}"
        page.locator('a[href="explorer.html"]').first.click()
        page.wait_for_selector(SHOWN, timeout=20_000)
        assert page.url.endswith("/explorer.html")
        _save_screenshot(page, tmp_path, "index-explorer.png")
    finally:
        page.close()
    assert not remote, f"the index asked the network for {sorted(set(remote))[:5]}"
    assert not errors, f"JavaScript errors: {errors[:3]}"
