"""Shared test fixtures: the smoke profile and an offline, batch-mode environment."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Tests train tiny models: one thread is fastest for them, and never oversubscribes the cores while
# a notebook kernel or a Ray worker runs beside the test process.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "smoke.yaml"

# The environment tests (and the `mtkd` subprocesses they start) run in: the hub off, no progress bars.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="session")
def smoke_params() -> Path:
    """Path of params/smoke.yaml (the whole study in miniature)."""
    return SMOKE


@pytest.fixture
def offline_env(monkeypatch) -> dict[str, str]:
    """HF_HUB_OFFLINE=1 (and friends) for this test; returns a full environment for subprocesses."""
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    return subprocess_env()


def subprocess_env(**extra: str) -> dict[str, str]:
    """os.environ plus the offline/batch switches, for `subprocess` calls of `mtkd`."""
    return {**os.environ, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1", **extra}


def mtkd_command(*args: str) -> list[str]:
    """`mtkd ARGS...` with this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "mtkd.cli", *args]


def offline_page(browser, width: int = 1300, height: int = 1000):
    """A browser page that may load only local files: every other request is refused and recorded.
    Returns (page, remote requests, page errors)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    remote, errors = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            remote.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    return page, remote, errors
