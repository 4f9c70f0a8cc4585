"""A quiet terminal while notebooks run: mtkd's own progress lines and real errors, not library noise.

The notebook kernel's stderr stream (every cell's warnings and log lines) goes through
:class:`KernelStderr`: lines of mtkd (``mtkd: ...``) and lines that report an error go to
the terminal, everything else to a log file beside the run's keys, so nothing is lost.
:data:`KERNEL_ARGUMENTS` starts the kernel app at log level CRITICAL: its own log lines
(``Kernel is running over TCP without encryption`` at start, ``KeyboardInterrupt caught`` at
shut-down) are not about the study. A cell that raises, or a kernel that dies, still stops
the run with its error (the runner's RunError), whatever is filtered here.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
SHOWN = re.compile(r"^(mtkd: |Traceback \(most recent call last\)|\w*(Error|Exception)\b|.*\bERROR\b)")


class KernelStderr:
    """A file-like sink for papermill's ``stderr_file``: forwards whole lines it should show."""

    def __init__(self, log_path: Path, terminal=None):
        self.log_path = Path(log_path)
        self.terminal = terminal or sys.stderr
        self.hidden = 0
        self._partial = ""
        self._log = None
        self.log_path.unlink(missing_ok=True)          # the lines of this execution only

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        line = line.rsplit("\r", 1)[-1]            # progress bars redraw with \r: keep the last state
        if SHOWN.match(line):
            self.terminal.write(line + "\n")
            self.terminal.flush()
            return
        if not line.strip():
            return
        if self._log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w")
        self._log.write(line + "\n")
        self.hidden += 1

    def flush(self) -> None:
        if self._log is not None:
            self._log.flush()

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        if self._log is not None:
            self._log.close()
            self._log = None
