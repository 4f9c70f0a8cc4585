#!/usr/bin/env python
"""Record whether the bf16 run of a study gives its fp32 run's answers (see mtkd/precision.py).

    python benchmarks/precision.py outputs/embedded-fp32 outputs/embedded --out benchmarks/precision-embedded.json

`make bench-precision` runs both studies first. The record is read by tests/test_precision.py.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from mtkd.study import config, io, pipeline
from mtkd.report.precision import compare_runs
from mtkd.kd.devices import pick_device, pick_precision


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", help="the fp32 run folder")
    ap.add_argument("candidate", help="the run folder to check (precision: auto or bf16)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    record = compare_runs(args.reference, args.candidate)
    for side in ("reference", "candidate"):
        params = config.load_params(Path(getattr(args, side)) / "params.yaml")
        dtype = pick_precision(params.precision, pick_device(params.device))
        record[side]["resolved"] = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    record["code_version"] = pipeline.CODE_VERSION
    record["machine"] = {"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
                         "threads": torch.get_num_threads()}
    record["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    io.write_text(Path(args.out), json.dumps(record, indent=1, default=float) + "\n")
    print(f"{record['within_reference_ci']} of {record['total']} (task, method) scores of {args.candidate} lie in "
          f"the fp32 run's {config.load_params(Path(args.reference) / 'params.yaml').stats.confidence:.0%} interval; "
          f"{record['paired_significant']} paired differences significant (Holm); mean difference "
          f"{record['mean_diff_pp']:+.2f} pp, largest {record['max_abs_diff_pp']:.2f} pp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
