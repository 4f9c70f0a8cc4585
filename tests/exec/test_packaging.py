"""environment.yml and pyproject.toml pin the same versions, so a GPU box gets the study's exact stack."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = list(project["dependencies"]) + [d for deps in project["optional-dependencies"].values() for d in deps]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    want = {re.split("==", p)[0].lower(): p for p in pins}
    got = {re.split("==", p)[0].lower(): p for p in pip if "==" in p}
    assert want == got
    assert all("==" in p for p in pins), "every dependency is pinned exactly"
    assert want["torch"] == "torch==2.13.0"


def test_readme_pictures_exist_and_are_remade_by_a_make_target():
    """README shows the headline figure and the explorer from a real run (docs/img, made by `make pictures`)."""
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert {"docs/img/headline.png", "docs/img/explorer.png"} <= set(images)
    for rel in images:
        data = (ROOT / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, rel
    assert re.search(r"^pictures:.*\n.*\n\t\$\(BIN\)/python scripts/pictures.py \$\(RUN\) --out docs/img",
                     (ROOT / "Makefile").read_text(), flags=re.M)
