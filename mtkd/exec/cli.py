"""The `mtkd` command: run a study, describe its data, list models and params.

Errors a user can fix (bad params, bad data, a held lock, a failed notebook) are
printed as one message with a non-zero exit; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

# Errors a user can fix: bad params or data (ValueError, incl. ParamsError), files, folders, disk (OSError),
# and the errors mtkd raises on purpose (RunError, AssetError, TrainingError, ...: any exception class
# defined in an mtkd module). Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError)


def is_user_error(e: BaseException) -> bool:
    return isinstance(e, USER_ERRORS) or type(e).__module__.split(".")[0] == "mtkd"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtkd", description="Multi-teacher vs single-teacher knowledge distillation.")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    # --debug is also accepted after the command (`mtkd run X --debug`); SUPPRESS keeps the top-level value
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback on errors")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", parents=[debug], help="run a study profile end to end (papermill + HTML reports)")
    r.add_argument("params", help="a YAML profile, e.g. params/embedded.yaml")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (dotted key, YAML value), e.g. --set student.epochs=1")
    r.add_argument("--out", help="the run folder (default outputs/<run_name>)")
    r.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="recompute a stage: teachers, logits, students, confirm, sweep, conditions, reports")
    r.add_argument("--executor", choices=("sequential", "ray", "accelerate"), default="sequential",
                   help="where units of work run: here one by one; on Ray (`pip install mtkd[ray]`); or shared among "
                        "the processes of `accelerate launch --multi_gpu --num_processes N -m mtkd.cli run ...` "
                        "(chosen by itself under such a launch)")
    r.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    r.add_argument("--dry-run", action="store_true",
                   help="validate params, data, models and disk, print the plan and estimates, train nothing")

    d = sub.add_parser("data", parents=[debug], help="describe the tasks of a profile: sizes, labels, lengths, sources")
    d.add_argument("params", nargs="?", help="a YAML profile")
    d.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    d.add_argument("--list", action="store_true", help="list the task registry")

    sub.add_parser("models", parents=[debug], help="list the model registry")
    sub.add_parser("params", parents=[debug], help="every parameter with its type, default and meaning")
    sm = sub.add_parser("summary", parents=[debug], help="print a finished run's main table and verdicts as markdown")
    sm.add_argument("run_dir", help="a finished run folder, e.g. outputs/embedded")
    pl = sub.add_parser("plan", parents=[debug], help="seeds and test examples that would reach a target MDE, "
                        "from a finished run's variance components")
    pl.add_argument("run_dir", help="a finished run folder, e.g. outputs/embedded")
    dc = sub.add_parser("docs", parents=[debug], help="rewrite the tables of README.md and docs/findings.md from a "
                        "finished run, keeping the small result files they quote beside them")
    dc.add_argument("run_dir", help="a finished run folder, e.g. outputs/embedded")
    dc.add_argument("--keep", default="docs/results/embedded",
                    help="where the quoted result files are kept (default docs/results/embedded)")
    dc.add_argument("documents", nargs="*", default=["README.md", "docs/findings.md"],
                    help="documents with <!-- mtkd:table NAME --> blocks (default README.md docs/findings.md)")
    pl.add_argument("--mde", type=float, default=1.5, help="target minimum detectable effect in pp (default 1.5)")
    return p


def _run(args) -> int:
    from mtkd.exec.runner import run_study
    run_study(args.params, args.overrides, out=args.out, force_stages=args.force, executor=args.executor,
              address=args.address, dry_run=args.dry_run)
    return 0


def _data(args) -> int:
    from mtkd.data import tasks as data
    if args.list or not args.params:
        for name, spec in data.TASKS.items():
            print(f"{name:18s} {spec}")
        return 0
    from mtkd.study.config import load_params
    params = load_params(args.params, args.overrides)
    print(data.describe_tasks(params.data))
    return 0


def _models(args) -> int:
    from mtkd.data.models import MODELS
    for name, spec in MODELS.items():
        print(f"{name:26s} {spec.kind:9s} {spec.about}")
    return 0


def _summary(args) -> int:
    from mtkd.report import tables as report
    from mtkd.study.results import load_run
    run = load_run(args.run_dir)
    print(report.markdown(report.main_table(run)))
    print()
    print(report.markdown(report.verdicts(run)))
    print()
    print(report.markdown(report.design(run)))
    confirming = report.confirming_table(run)
    if len(confirming):
        print()
        print(report.markdown(confirming))
    print()
    print(report.markdown(report.variance_components(run)))
    per_class = report.per_class_f1(run)
    if len(per_class):
        print()
        print(report.markdown(per_class))
    if len(run.conditions):
        from mtkd.report.conditions import conditions_overview
        print()
        print(report.markdown(conditions_overview(run.conditions, run.conditions_summary)))
    return 0


def _plan(args) -> int:
    from mtkd.report import tables as report
    from mtkd.study.results import load_run
    run = load_run(args.run_dir)
    table = report.plan(run, args.mde)
    st = report.stats_params(run)
    primary = int((run.comparisons["family"] == "primary").sum()) if "family" in run.comparisons else 0
    print(f"Seeds and test examples that reach an MDE of {args.mde:g} pp ({st['power']:.0%} power, two-sided) and "
          f"{st['power']:.0%} power for TOST to find 'equivalent' within +-{st['equivalence_margin']:g} pp at a "
          f"true difference of 0 (level {st['significance']:g} / {primary} primary comparisons), by number of seeds:")
    print()
    print(report.markdown(table))
    return 0


def _docs(args) -> int:
    from mtkd.report.documents import write
    changed = write(args.documents, args.run_dir, args.keep)
    print(f"tables rewritten from {args.run_dir} (kept in {args.keep}): "
          + (", ".join(map(str, changed)) if changed else "no change"))
    return 0


def _params(args) -> int:
    from mtkd.study.config import describe_schema
    print("\n".join(describe_schema()))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    args = _parser().parse_args(argv)
    handler = {"run": _run, "data": _data, "models": _models, "params": _params, "summary": _summary,
               "plan": _plan, "docs": _docs}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("mtkd: interrupted; finished units are kept, run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug or not is_user_error(e):
            if not args.debug:
                print(f"mtkd: internal error ({type(e).__name__}); this is a bug, please report it with the "
                      "traceback below", file=sys.stderr)
            raise
        print(f"mtkd: error: {e}", file=sys.stderr)
        print("mtkd: (run with --debug to see the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
