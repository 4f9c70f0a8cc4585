"""Real-browser checks (issue 7, item 4): headless Chromium, driven by Playwright.

1. JupyterLab on localhost opens ``notebooks/explorer.ipynb`` on a fake run, runs it, and the
   explorer widget renders; changing a filter dropdown changes the example shown.
2. An HTML report (a notebook with plotly figures, executed and rendered by
   ``mtkd.exec.runner.render_html``) opened from ``file://`` with every other request blocked: each
   plotly figure renders and the page asks the network for nothing.

Chromium is Debian's (``/usr/bin/chromium``, or ``$MTKD_CHROMIUM``; ``make test`` installs it);
Playwright's own browser download is never used. When the browser or Playwright is missing
the tests FAIL, they do not skip. Screenshots go to ``test-artifacts/browser/`` at the repo
root (gitignored) and to each test's ``tmp_path``. Every wait is bounded.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import offline_page

try:
    from fake_run import write_fake_run
except ImportError:  # tests/ as a package
    from tests.fake_run import write_fake_run

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("MTKD_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google on this closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 60          # jupyter lab answering /api/status
PAGE_S = 60                  # JupyterLab loaded, kernel idle
RUN_S = 90                   # run-all until the explorer shows an example
CHANGE_S = 30                # a filter change until the new example is shown


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def browser():
    """A headless Debian Chromium; fails (never skips) when it cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # pragma: no cover - the test extra installs it
        pytest.fail(f"playwright is not installed ({e}); pip install -e '.[test]'")
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install-chromium.sh (make test does) "
                    "or set MTKD_CHROMIUM")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        except Exception as e:
            pytest.fail(f"Chromium at {CHROMIUM} did not start under Playwright: {e}")
        try:
            yield b
        finally:
            b.close()


def _save_screenshot(page, tmp_path: Path, name: str, **kw) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), **kw)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / name)
    return shot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def _log_tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- JupyterLab

@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 over a tmp copy of notebooks/explorer.ipynb, on a fake run; shut down after."""
    run_dir = write_fake_run(tmp_path / "run")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    shutil.copyfile(ROOT / "notebooks" / "explorer.ipynb", nbdir / "explorer.ipynb")   # autosave stays in tmp
    jhome = tmp_path / "jupyter"
    token = secrets.token_hex(16)
    env = {**os.environ, "MTKD_EXPLORER_RUN": str(run_dir), "HF_HUB_OFFLINE": "1",
           "JUPYTER_CONFIG_DIR": str(jhome / "config"), "JUPYTER_DATA_DIR": str(jhome / "data"),
           "JUPYTER_RUNTIME_DIR": str(jhome / "runtime"), "IPYTHONDIR": str(jhome / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("JUPYTER_PATH", None)            # kernels and lab extensions come from this venv's share/jupyter
    settings = jhome / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)             # no "get notified about Jupyter news?" toast over the notebook
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={_free_port()}",
           "--port-retries=20", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")              # CI containers run as root
    log = tmp_path / "jupyter-lab.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=nbdir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = None
    info = jhome / "runtime" / f"jpserver-{proc.pid}.json"     # the port it really took (the free one may be gone)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode} before answering:\n{_log_tail(log)}")
            try:
                base = base or f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
                _api(base, token, "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {SERVER_START_S} s:\n{_log_tail(log)}")
                time.sleep(0.25)
        kernels = _api(base, token, "/api/kernelspecs")
        assert "python3" in kernels["kernelspecs"], f"no python3 kernel for jupyter lab: {kernels}"
        yield {"url": f"{base}/lab/tree/explorer.ipynb?token={token}", "base": base, "token": token,
               "run_dir": run_dir, "log": log}
    finally:
        try:                                  # kernels first (they run in their own sessions), then the server
            for s in (_api(base, token, "/api/sessions", timeout=3) if base else None) or []:
                _api(base, token, f"/api/sessions/{s['id']}", method="DELETE", timeout=10)
        except Exception:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _outputs_text(page) -> str:
    try:
        return "\n---\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())[-3000:]
    except Exception as e:
        return f"(could not read outputs: {e})"


_KERNEL_IDLE = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content || !w.content.widgets) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return w.sessionContext.isReady && !!k && k.status === 'idle';
}"""

_SHOWN = ".mtkd-explorer-example[data-idx]:not(.mtkd-explorer-empty)"


def test_explorer_in_jupyterlab(lab, browser, tmp_path):
    from mtkd.report.explorer import explore

    # What the browser must show: the same widget logic, in-process.
    w = explore(lab["run_dir"])
    first = w.shown_idx
    w.controls["region"].value = "all_agree"
    after = w.shown_idx
    assert first is not None and after is not None and first != after, "the fake run must make the filter matter"

    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(30_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(lab["url"], wait_until="domcontentloaded", timeout=PAGE_S * 1000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=PAGE_S * 1000)
        try:
            page.wait_for_function(_KERNEL_IDLE, timeout=PAGE_S * 1000, polling=250)
        except Exception:
            pytest.fail("JupyterLab did not reach an idle python3 kernel for explorer.ipynb "
                        f"(window.jupyterapp exposed: {page.evaluate('() => !!window.jupyterapp')}); "
                        f"page errors: {errors[:3]}\nserver log:\n{_log_tail(lab['log'])}")
        # not awaited: the wait below is the bounded one
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }")
        try:
            page.wait_for_selector(_SHOWN, timeout=RUN_S * 1000)
        except Exception:
            pytest.fail(f"the explorer did not show an example after Run All; cell outputs:\n{_outputs_text(page)}"
                        f"\npage errors: {errors[:3]}")
        shown = page.locator(_SHOWN)
        assert shown.count() == 1
        # a rendered ipywidget, not the text fallback: the filter dropdowns are real <select>s
        assert page.locator(".mtkd-explorer .widget-dropdown select").count() >= 8
        assert shown.get_attribute("data-idx") == str(first)
        shown.scroll_into_view_if_needed()
        _save_screenshot(page, tmp_path, "explorer-before.png")

        region = page.locator(".mtkd-explorer .widget-dropdown").filter(
            has=page.locator("label.widget-label", has_text=re.compile(r"^\s*teachers\s*$"))).locator("select")
        assert region.count() == 1, "exactly one 'teachers' (agreement region) dropdown"
        region.select_option(label="all agree")
        try:
            page.wait_for_function(
                """([sel, old]) => { const e = document.querySelector(sel);
                                     return !!e && e.getAttribute('data-idx') !== old; }""",
                arg=[_SHOWN, str(first)], timeout=CHANGE_S * 1000, polling=100)
        except Exception:
            pytest.fail(f"changing the region filter did not change the shown example (still idx {first}); "
                        f"cell outputs:\n{_outputs_text(page)}")
        assert page.locator(_SHOWN).get_attribute("data-idx") == str(after)
        assert "all agree" in page.locator(_SHOWN).inner_text().lower()
        page.locator(_SHOWN).scroll_into_view_if_needed()
        _save_screenshot(page, tmp_path, "explorer.png")
    except BaseException:
        try:
            _save_screenshot(page, tmp_path, "explorer-failure.png")
        except Exception:
            pass
        raise
    finally:
        page.close()


# --------------------------------------------------------------------------- the HTML reports

def _report_notebook(path: Path, run_dir: Path) -> int:
    """A small notebook with plotly figures made the way the numbered notebooks make them; returns #figures."""
    import nbformat as nbf
    nb = nbf.v4.new_notebook()
    nb.cells = [
        nbf.v4.new_markdown_cell("# Report check\nplotly figures in an offline HTML report."),
        nbf.v4.new_code_cell("import mtkd.report.notebook as nb\nnb.setup_plotly()\nimport plotly.graph_objects as go\n"
                             "from mtkd.report import figures, tables as report\nfrom mtkd.study.results import load_run\n"
                             f"run = load_run({str(run_dir)!r})"),
        nbf.v4.new_code_cell("go.Figure(go.Bar(x=['a', 'b', 'c'], y=[3, 1, 2], name='bars'))"),
        nbf.v4.new_code_cell("figures.agreement_bars(report.agreement(run, split='test'))"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, path)
    return 2


def test_html_report_renders_offline(browser, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    from mtkd.exec.runner import render_html

    run_dir = write_fake_run(tmp_path / "run")
    src = tmp_path / "report_check.ipynb"
    n_figures = _report_notebook(src, run_dir)
    nb = nbformat.read(src, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120, startup_timeout=60,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, src)
    html_path = render_html(src)
    text = html_path.read_text()

    remote_scripts = re.findall(r"<script[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>", text, flags=re.I)
    remote_links = re.findall(r"<link[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>", text, flags=re.I)
    assert not remote_scripts and not remote_links, (
        f"{html_path.name} loads from the network (the reports must be self-contained): "
        f"{sorted(set(remote_scripts + remote_links))[:5]}")

    page, remote, errors = offline_page(browser, 1300)
    try:
        page.goto(html_path.as_uri(), wait_until="load", timeout=60_000)
        try:
            page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 && "
                                   f"document.querySelectorAll('.js-plotly-plot').length >= {n_figures}",
                                   timeout=30_000, polling=200)
        except Exception:
            pytest.fail(f"plotly figures did not render in {html_path.name}; page errors: {errors[:3]}; "
                        f"blocked requests: {remote[:5]}")
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == n_figures
        for i in range(n_figures):
            p = plots.nth(i)
            assert p.locator(".main-svg").count() >= 1, f"figure {i} has no svg"
            assert p.locator("g.trace").count() >= 1 and p.locator("g.trace .point").count() >= 1, \
                f"figure {i} drew no traces"
        assert page.locator(".plotly .main-svg").count() >= n_figures
        # hover shows the numbers: the first figure's tallest bar ('a', 3)
        bar = plots.nth(0).locator("g.trace .point").first
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        assert box, "the first bar has no box"
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        hover = plots.nth(0).locator(".hoverlayer .hovertext")
        hover.first.wait_for(state="attached", timeout=10_000)
        assert "3" in hover.first.text_content()
        _save_screenshot(page, tmp_path, "report.png", full_page=True)
    finally:
        page.close()
    assert not remote, f"the report asked the network for {sorted(set(remote))[:5]}"
    assert not errors, f"JavaScript errors in the report: {errors[:3]}"
