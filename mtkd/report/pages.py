"""The run's HTML pages: each executed notebook as a page that reads like a paper, and ``index.html``.

A notebook page (:func:`render_notebook`) hides the code unless ``report.show_code`` (the
``.ipynb`` beside it keeps every cell), drops the parameters cells, the kernel's stderr (mtkd
progress lines, library warnings) and the prompts, and draws every plotly figure from its
JSON with one shared ``plotly.min.js`` beside the pages (copied once per folder from the
installed plotly package), so a page weighs kilobytes, not megabytes. Nothing is loaded
from the network.

``index.html`` (:func:`write_index`) is where a reader starts: the headline verdicts and
the main table, links to every page and to the static explorer, the run's params and timings.
"""
from __future__ import annotations

import copy
import html
import re
from pathlib import Path

from mtkd.study import io

PLOTLY_JS = "plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
HIDDEN_TAGS = {"parameters", "injected-parameters"}
_REMOTE_SCRIPT = re.compile(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', re.I)
_BUNDLE_MARK = "window.PlotlyConfig"       # the plotly "notebook" renderer's inline plotly.js
PAGE_CSS = """
body { max-width: 1180px; margin: 0 auto; }
.mtkd-nav { font: 13px system-ui, sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd; }
.mtkd-nav a { margin-right: 14px; }
table.mtkd-table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
table.mtkd-table th, table.mtkd-table td { padding: 3px 10px; border-bottom: 1px solid #e3e3e3; white-space: nowrap; }
table.mtkd-table th { border-bottom: 1px solid #999; }
"""


def plotly_js() -> str:
    """plotly.js of the installed plotly package (the version the figures were made with)."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


def ensure_plotly_js(folder: Path) -> Path:
    """``<folder>/plotly.min.js``, written when missing or from another plotly version."""
    target = Path(folder) / PLOTLY_JS
    text = plotly_js()
    if not target.exists() or target.stat().st_size != len(text.encode()) or target.read_text() != text:
        io.write_text(target, text)
    return target


def _figure_html(spec: dict) -> str:
    import plotly.io as pio
    return pio.to_html(spec, include_plotlyjs=False, full_html=False, validate=False,
                       config={"displaylogo": False})


def page_cells(nb):
    """A copy of the executed notebook as the page shows it: no parameters cells, no stderr, figures from JSON."""
    nb = copy.deepcopy(nb)
    figures = 0
    cells = []
    for cell in nb.cells:
        if HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if cell.cell_type == "code":
            outputs = []
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream" and out.get("name") == "stderr":
                    continue
                data = out.get("data") or {}
                if PLOTLY_MIME in data:
                    out["data"] = {"text/html": _figure_html(data[PLOTLY_MIME])}
                    figures += 1
                elif _BUNDLE_MARK in str(data.get("text/html", "")) and "plotly" in str(data.get("text/html", "")):
                    continue
                outputs.append(out)
            cell["outputs"] = outputs
        cells.append(cell)
    nb.cells = cells
    return nb, figures


def _nav(extra: str = "") -> str:
    return f'<nav class="mtkd-nav"><a href="index.html">&larr; report index</a><a href="explorer.html">explorer</a>{extra}</nav>'


def render_notebook(notebook: Path, show_code: bool = False) -> Path:
    """``<notebook>.html`` beside the executed ``.ipynb``: see the module docstring."""
    import nbformat
    from nbconvert import HTMLExporter
    notebook = Path(notebook)
    nb, figures = page_cells(nbformat.read(notebook, as_version=4))
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.exclude_input = not show_code
    body, _ = exporter.from_notebook_node(nb)
    body = _REMOTE_SCRIPT.sub("", body)   # require.js/MathJax of the template: not needed, not offline
    head = f"<style>{PAGE_CSS}</style>"
    if figures:
        ensure_plotly_js(notebook.parent)
        head += f'<script src="{PLOTLY_JS}" charset="utf-8"></script>'
    body = body.replace("</head>", head + "</head>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _nav(), body, count=1)
    target = notebook.with_suffix(".html")
    io.write_text(target, body)
    return target


def notebook_title(notebook: Path) -> str:
    """The first markdown heading of a notebook (its name when it has none)."""
    import nbformat
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return Path(notebook).stem


# --------------------------------------------------------------------------- index.html

INDEX_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 1180px;
       margin: 0 auto; padding: 12px 20px 40px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table.mtkd-table { border-collapse: collapse; font-size: 13px; }
table.mtkd-table th, table.mtkd-table td { padding: 3px 10px; border-bottom: 1px solid #e3e3e3; text-align: left; white-space: nowrap; }
table.mtkd-table th { border-bottom: 1px solid #999; }
pre { background: #f6f6f6; padding: 10px; font-size: 12px; max-height: 420px; overflow: auto; }
ul.mtkd-pages li { margin: 3px 0; } .muted { color: #777; }
"""


def _section(title: str, content: str, anchor: str) -> str:
    return f'<h2 id="{anchor}">{html.escape(title)}</h2>\n{content}'


def _design_html(run) -> str:
    """Each primary comparison's seeds, MDE and power (none for a run written before the confirming stage)."""
    from mtkd.report import tables as report
    from mtkd.report.paper import paper
    try:
        return paper(report.design(run)).to_html()
    except KeyError:
        return ""


def write_index(run_dir: Path, pages: list[dict], total_seconds: float | None = None) -> Path:
    """``reports/index.html``. ``pages``: ``{"name", "title", "status", "seconds"}`` per notebook, in order.

    ``status`` is ``executed``, ``rendered`` or ``reused`` (this invocation); ``seconds`` the
    time of the notebook's last execution.
    """
    from mtkd.report import tables as report
    from mtkd.study.results import load_run
    from mtkd.report.paper import paper
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    e = html.escape
    parts = [f"<h1>mtkd study report: {e(str(run.params.get('run_name', run_dir.name)))}</h1>",
             f'<p class="muted">run folder {e(str(run_dir))}</p>']
    try:
        protocol = run.success_metrics.get("protocol", "")
        verdicts = paper(report.verdicts(run)).to_html() + _design_html(run)
        main = paper(report.main_table(run)).to_html()
    except (FileNotFoundError, KeyError, ValueError) as err:
        protocol, verdicts, main = "", f'<p class="muted">headline not available: {e(str(err))}</p>', ""
    parts.append(_section("Headline: does multi-teacher distillation beat the best single teacher?",
                          (f"<p>{e(protocol)}</p>" if protocol else "") + verdicts, "headline"))
    if main:
        parts.append(_section("Main table (test split, mean over seeds [95 % CI])", main, "main-table"))
    links = []
    for p in pages:
        secs = p.get("seconds")
        when = f"{secs:.0f} s" if isinstance(secs, (int, float)) else "time unknown"
        links.append(f'<li><a href="{e(p["name"])}.html">{e(p["title"])}</a> '
                     f'<span class="muted">({e(p["status"])}; last execution {when}; '
                     f'<a href="{e(p["name"])}.ipynb">notebook</a>)</span></li>')
    links.append('<li><a href="explorer.html">Disagreement explorer</a> <span class="muted">(every test and '
                 'selection example: filters, sorting, paging; no kernel needed)</span></li>')
    parts.append(_section("Pages", f'<ul class="mtkd-pages">{"".join(links)}</ul>', "pages"))
    timing = [f"<tr><td>{e(p['title'])}</td><td>{e(p['status'])}</td><td style='text-align:right'>"
              f"{p['seconds']:.1f}</td></tr>" if isinstance(p.get("seconds"), (int, float)) else
              f"<tr><td>{e(p['title'])}</td><td>{e(p['status'])}</td><td></td></tr>" for p in pages]
    total = (f"<p>This invocation of <code>mtkd run</code> took {total_seconds:.0f} s.</p>"
             if total_seconds is not None else "")
    parts.append(_section("Timings", total + '<table class="mtkd-table"><tr><th>notebook</th><th>this run</th>'
                          f'<th>seconds (last execution)</th></tr>{"".join(timing)}</table>', "timings"))
    params_text = (run_dir / "params.yaml").read_text()
    parts.append(_section("Parameters (params.yaml)", f"<pre>{e(params_text)}</pre>", "params"))
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>mtkd report: {e(run_dir.name)}</title>'
            f"<style>{INDEX_CSS}</style></head><body>{''.join(parts)}</body></html>")
    target = run_dir / "reports" / "index.html"
    io.write_text(target, page)
    return target
