"""The ``mtkd`` command (``python -m mtkd.cli`` under ``accelerate launch``); the code is in mtkd.exec.cli."""
from mtkd.exec.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
