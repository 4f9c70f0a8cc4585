"""The house rule of docs/design.md, checked from the imports: layers import only downward.

kd (the KD maths) < data (tasks, models, metrics) < study (params, stages, results, statistics)
< report (the read side: tables, figures, explorer) < exec (runner, CLI, executors). The public
faces at the top (mtkd/losses.py, fusion.py, explorer.py, cli.py) only re-export.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mtkd"
LAYERS = ("kd", "data", "study", "report", "exec")
FACES = {"losses.py": "kd", "fusion.py": "kd", "explorer.py": "report", "cli.py": "exec"}


def mtkd_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import of an mtkd module in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; mtkd imports are absolute")
            if node.module == "mtkd":
                out += [(node.lineno, f"mtkd.{a.name}") for a in node.names]
            elif node.module and node.module.startswith("mtkd."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("mtkd.")]
    return out


def layer_of(module: str) -> str:
    return module.split(".")[1]


def test_every_module_is_in_a_layer():
    loose = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", *FACES))
    assert not loose, f"modules outside the layer packages: {loose}"
    assert sorted(p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downward(layer):
    allowed = set(LAYERS[:LAYERS.index(layer) + 1])
    wrong = [f"{p.relative_to(PKG)}:{line}: imports {mod}"
             for p in sorted((PKG / layer).rglob("*.py"))
             for line, mod in mtkd_imports(p) if layer_of(mod) not in allowed]
    assert not wrong, "imports running up the layers:\n" + "\n".join(wrong)


def test_faces_only_re_export_their_layer():
    for name, layer in FACES.items():
        mods = {layer_of(m) for _, m in mtkd_imports(PKG / name)}
        assert mods == {layer}, (name, mods)


def test_no_private_name_is_imported_across_modules():
    wrong = []
    for p in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtkd"):
                wrong += [f"{p.relative_to(PKG)}:{node.lineno}: {node.module}.{a.name}"
                          for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and isinstance(node.value, ast.Name) and node.value.id in {"stats", "train", "teachers", "io",
                                                                              "pipeline", "collect", "config"}:
                wrong.append(f"{p.relative_to(PKG)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not wrong, "private names used across modules:\n" + "\n".join(wrong)


def test_the_api_of_the_spec_stays():
    from mtkd.explorer import explore
    from mtkd.fusion import FUSERS, GatingFusion, fuse
    from mtkd.losses import kd_loss
    assert callable(kd_loss) and callable(fuse) and callable(explore) and isinstance(FUSERS, dict)
    assert {"average", "weighted", "best_per_sample", "gating"} <= set(FUSERS) and GatingFusion


def test_design_lists_every_module():
    """docs/design.md's module table names every module of the tree, and no module that is not there."""
    import re
    text = (PKG.parent / "docs" / "design.md").read_text()
    table = text[text.index("| module | what it holds |"):]
    table = table[:table.index("\n\n")]
    listed = set(re.findall(r"`(mtkd\.[a-z_]+\.[a-z_]+)`", table))
    modules = {"mtkd." + ".".join(p.relative_to(PKG).with_suffix("").parts)
               for layer in LAYERS for p in (PKG / layer).glob("*.py") if p.name != "__init__.py"}
    modules |= {f"mtkd.{layer}.{d.name}" for layer in LAYERS for d in (PKG / layer).iterdir()
                if (d / "__init__.py").exists()}
    assert listed == modules, f"missing from design.md: {sorted(modules - listed)}; not in the tree: {sorted(listed - modules)}"
