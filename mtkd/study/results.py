"""Read a finished run folder (the layout fixed in docs/design.md).

>>> run = load_run("outputs/embedded")          # or Run.open("outputs/embedded").results
>>> run.tasks, run.teachers("rotten_tomatoes")
>>> idx, z = run.teacher_logits("rotten_tomatoes", "test")     # (N,), (N, K, C)
>>> run.fused_targets("rotten_tomatoes", "test")["average"]      # (N, C) probabilities

Files are read lazily and cached on the :class:`RunResults`. A missing or partial file raises
``FileNotFoundError`` / ``ValueError`` naming the file and saying that the run may be
unfinished.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mtkd.study.fidelity import static_targets
from mtkd.study.fusion_args import FUSION_LABEL_SPLITS
from mtkd.study.methods import Method

PRED_COLUMNS = ("task", "method", "kind", "seed", "split", "idx", "label", "pred")
GATE_COLUMNS = ("task", "method", "seed", "split", "idx", "weights")
FUSION_WEIGHT_COLUMNS = ("task", "method", "split", "idx", "weights", "applied")
# the conditions (issue 17): one row per paired comparison per condition value, and one per method
CONDITION_KEYS = ("task", "axis", "param", "value", "order", "is_main")
CONDITIONS_COLUMNS = (*CONDITION_KEYS, "comparison", "a", "b", "metric", "diff_pp", "ci_low", "ci_high", "p_value",
                      "p_adjusted", "significant", "equivalence_p", "equivalence_p_adjusted", "verdict",
                      "margin_pp", "mde_pp", "se_pp", "df")
FIDELITY_COLUMNS = ("method", "kind", "role", "mean", "ci_low", "ci_high", "n_seeds", "target_score",
                    "agreement_pct", "kl_target_student", "gap_closed", "gap_closed_undefined")
CONDITIONS_SUMMARY_COLUMNS = (*CONDITION_KEYS, *FIDELITY_COLUMNS)


def _hint(run_dir: Path) -> str:
    return (f"the run folder {run_dir} may be unfinished (run `mtkd run PARAMS.yaml --out {run_dir}` first, "
            "or point at a finished run)")


class RunResults:
    """The read side of a run folder: ``Run.results`` (the run's own view of its files), or
    :func:`load_run` for any folder, finished or not, without validating its params."""

    def __init__(self, run_dir: str | Path, params: dict | None = None):
        self.path = Path(run_dir)
        if not self.path.is_dir():
            raise FileNotFoundError(f"run folder {self.path} does not exist; run `mtkd run PARAMS.yaml --out "
                                    f"{self.path}` first")
        if params is None:
            params_file = self._file("params.yaml")
            try:
                params = yaml.safe_load(params_file.read_text()) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"{params_file} is not valid YAML ({e}); {_hint(self.path)}") from e
        self.params: dict = params
        self._cache: dict[Any, Any] = {}
        data_dir = self.path / "data"
        found = sorted(p.parent.name for p in data_dir.glob("*/task.json")) if data_dir.is_dir() else []
        if not found:
            raise FileNotFoundError(f"no task found: {data_dir}/<task>/task.json is missing; {_hint(self.path)}")
        order = list((self.params.get("data") or {}).get("tasks") or [])
        self.tasks: list[str] = [t for t in order if t in found] + [t for t in found if t not in order]

    def __repr__(self) -> str:
        return f"RunResults({str(self.path)!r}, tasks={self.tasks})"

    # ------------------------------------------------------------------ helpers
    def _file(self, rel: str | Path, what: str = "") -> Path:
        p = self.path / rel
        if not p.exists():
            extra = f" ({what})" if what else ""
            raise FileNotFoundError(f"{p} is missing{extra}; {_hint(self.path)}")
        return p

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; this run has {self.tasks}")

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def seeds(self) -> list[int]:
        """Student seeds from params (the first one is the teachers' seed)."""
        seeds = self.params.get("seeds")
        if seeds:
            return [int(s) for s in seeds]
        return sorted(int(s) for s in self.predictions["seed"].unique())

    # ------------------------------------------------------------------ data
    def task_info(self, task: str) -> dict:
        """``data/<task>/task.json``: name, text_fields, label_names, metrics, source, license, group_key."""
        self._check_task(task)
        return self._cached(("task_info", task), lambda: json.loads(self._file(f"data/{task}/task.json").read_text()))

    def label_names(self, task: str) -> list[str]:
        return list(self.task_info(task)["label_names"])

    def examples(self, task: str, split: str | None = None) -> pd.DataFrame:
        """``data/<task>/examples.parquet`` (split, idx, label, text fields), optionally one split."""
        self._check_task(task)

        def load():
            f = self._file(f"data/{task}/examples.parquet")
            df = pd.read_parquet(f)
            missing = {"split", "idx", "label"} - set(df.columns)
            if missing:
                raise ValueError(f"{f} lacks columns {sorted(missing)}; {_hint(self.path)}")
            return df

        df = self._cached(("examples", task), load)
        return df if split is None else df[df["split"] == split].reset_index(drop=True)

    # ------------------------------------------------------------------ results files
    def _all_predictions(self) -> pd.DataFrame:
        """``predictions.parquet`` (or ``predictions.csv``) whole: both stages."""
        def load():
            pq, csv = self.path / "predictions.parquet", self.path / "predictions.csv"
            if pq.exists():
                df = pd.read_parquet(pq)
                f = pq
            elif csv.exists():
                df = pd.read_csv(csv)
                f = csv
                if "probs" in df.columns:
                    df["probs"] = [json.loads(v) if isinstance(v, str) else v for v in df["probs"]]
            else:
                raise FileNotFoundError(f"{pq} is missing (no predictions.csv either); {_hint(self.path)}")
            missing = set(PRED_COLUMNS) - set(df.columns)
            if missing:
                raise ValueError(f"{f} lacks columns {sorted(missing)}; {_hint(self.path)}")
            return df

        return self._cached("all_predictions", load)

    def _stage_rows(self, stage: str) -> pd.DataFrame:
        df = self._all_predictions()
        if "stage" not in df.columns:                  # a run made before the confirming stage existed
            return df if stage == "choosing" else df.iloc[:0]
        return self._cached(("stage_rows", stage), lambda: df[df["stage"] == stage].reset_index(drop=True))

    @property
    def predictions(self) -> pd.DataFrame:
        """The choosing stage's rows of ``predictions.parquet``: one per (task, method, seed, split, idx), every
        method on the same seeds (what the analyses read)."""
        return self._stage_rows("choosing")

    @property
    def confirming_predictions(self) -> pd.DataFrame:
        """The confirming stage's rows: the primary comparisons' methods on fresh seeds (empty without one)."""
        return self._stage_rows("confirming")

    @property
    def confirm_summary(self) -> pd.DataFrame:
        """``confirm_summary.csv``: the confirming stage's methods over its fresh seeds (empty without one)."""
        f = self.path / "confirm_summary.csv"
        return self._cached("confirm_summary", lambda: pd.read_csv(f) if f.exists() else pd.DataFrame())

    @property
    def confirm_plan(self) -> dict | None:
        """``confirm_plan.json``: the confirming stage's design per task (None without one)."""
        f = self.path / "confirm_plan.json"
        return self._cached("confirm_plan", lambda: json.loads(f.read_text()) if f.exists() else None)

    @property
    def master_results(self) -> pd.DataFrame:
        """``master_results.csv``: task, method, kind, seed, split, metric, score (percent)."""
        return self._cached("master", lambda: pd.read_csv(self._file("master_results.csv")))

    @property
    def summary(self) -> pd.DataFrame:
        """``summary.csv``: task, method, kind, metric, mean, ci_low, ci_high, n_seeds."""
        return self._cached("summary", lambda: pd.read_csv(self._file("summary.csv")))

    @property
    def comparisons(self) -> pd.DataFrame:
        """``comparisons.csv``: task, a, b, diff_pp, ci_low, ci_high, p_value, p_adjusted, significant."""
        return self._cached("comparisons", lambda: pd.read_csv(self._file("comparisons.csv")))

    @property
    def success_metrics(self) -> dict:
        return self._cached("success", lambda: json.loads(self._file("success_metrics.json").read_text()))

    @property
    def choices(self) -> dict:
        """``choices.json``: task -> {"best_single", "best_multi"} chosen on the selection split."""
        return self._cached("choices", lambda: json.loads(self._file("choices.json").read_text()))

    @property
    def sweep_results(self) -> pd.DataFrame:
        """``sweep_results.csv`` (master columns + temperature, alpha); empty when the sweep did not run."""
        def load():
            f = self.path / "sweep_results.csv"
            if not f.exists():
                return pd.DataFrame(columns=["task", "method", "kind", "seed", "split", "metric", "score",
                                             "temperature", "alpha"])
            return pd.read_csv(f)
        return self._cached("sweep", load)

    def _table(self, name: str, columns) -> pd.DataFrame:
        """A result CSV that a run may not have (no conditions section, older code): empty with its columns."""
        def load():
            f = self.path / name
            if not f.exists():
                return pd.DataFrame(columns=list(columns))
            df = pd.read_csv(f, keep_default_na=False, na_values=[""], dtype={"value": str} if "value" in columns else None)
            missing = set(columns) - set(df.columns)
            if missing:
                raise ValueError(f"{f} lacks columns {sorted(missing)}; {_hint(self.path)}")
            return df
        return self._cached(name, load)

    @property
    def fidelity(self) -> pd.DataFrame:
        """``fidelity.csv``: per task and student method of the main study, its test score beside how closely
        it follows its target (top-1 agreement, KL(target || student)), the target's own test score and
        the gap closed; empty for a run of older code."""
        return self._table("fidelity.csv", ("task", *FIDELITY_COLUMNS))

    @property
    def conditions(self) -> pd.DataFrame:
        """``conditions.csv``: the main table's paired comparisons at every value of every condition axis
        (task, axis, param, value, comparison, a, b, diff_pp, interval, p_adjusted, verdict ...); empty when
        the params have no conditions."""
        return self._table("conditions.csv", CONDITIONS_COLUMNS)

    @property
    def conditions_summary(self) -> pd.DataFrame:
        """``conditions_summary.csv``: per condition value, every method's test score with its interval and
        its fidelity (the columns of :attr:`fidelity`); empty when the params have no conditions."""
        return self._table("conditions_summary.csv", CONDITIONS_SUMMARY_COLUMNS)

    def methods(self, task: str | None = None, kinds=None) -> list[str]:
        """Methods present in the predictions (teacher:<t>, baseline, single:<t>, multi:<fuser>), in file order."""
        df = self.predictions
        if task is not None:
            df = df[df["task"] == task]
        if kinds is not None:
            df = df[df["kind"].isin(list(kinds))]
        return list(dict.fromkeys(df["method"]))

    def student_methods(self, task: str) -> list[str]:
        return self.methods(task, kinds=("baseline", "single", "multi"))

    def student_predictions(self, task: str, split: str = "test", method: str | None = None) -> pd.DataFrame:
        """Prediction rows of students (kinds baseline/single/multi) for one task and split."""
        df = self.predictions
        m = (df["task"] == task) & (df["split"] == split) & df["kind"].isin(["baseline", "single", "multi"])
        if method is not None:
            m &= df["method"] == method
        return df[m].reset_index(drop=True)

    # ------------------------------------------------------------------ teachers and fusion
    def fusion_info(self, task: str) -> dict:
        """``fusion/<task>.json``: teachers, best_teacher, selection_scores, weights, temperatures."""
        self._check_task(task)

        def load():
            f = self._file(f"fusion/{task}.json")
            info = json.loads(f.read_text())
            if not info.get("teachers"):
                raise ValueError(f"{f} has no 'teachers' list; {_hint(self.path)}")
            return info

        return self._cached(("fusion", task), load)

    def teachers(self, task: str) -> list[str]:
        """Teacher names in the order used for stacking and fusion."""
        return list(self.fusion_info(task)["teachers"])

    def teacher_logits(self, task: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(idx (N,), logits (N, K, C))`` from ``logits/<task>/<teacher>/<split>.npz``, teachers in order."""
        def load():
            idx0, stack = None, []
            for t in self.teachers(task):
                f = self._file(f"logits/{task}/{t}/{split}.npz", f"teacher {t!r} logits")
                with np.load(f) as z:
                    if "logits" not in z or "idx" not in z:
                        raise ValueError(f"{f} must hold arrays 'logits' and 'idx', has {list(z.keys())}; "
                                         f"{_hint(self.path)}")
                    logits, idx = np.asarray(z["logits"]), np.asarray(z["idx"]).astype(np.int64)
                if logits.ndim != 2 or idx.shape != (logits.shape[0],):
                    raise ValueError(f"{f}: logits {logits.shape} and idx {idx.shape} do not match (N, C) / (N,)")
                if idx0 is None:
                    idx0 = idx
                elif idx.shape != idx0.shape or not np.array_equal(idx, idx0):
                    raise ValueError(f"{f}: teacher {t!r} has examples (idx) in a different order or set than "
                                     f"teacher {self.teachers(task)[0]!r}; the logit caches do not align")
                if stack and logits.shape[1] != stack[0].shape[1]:
                    raise ValueError(f"{f}: {logits.shape[1]} classes, other teachers have {stack[0].shape[1]}")
                stack.append(logits.astype(np.float32))
            return idx0, np.stack(stack, axis=1)

        return self._cached(("logits", task, split), load)

    def teacher_probs(self, task: str, split: str = "test", T: float = 1.0) -> dict[str, np.ndarray]:
        """Teacher name -> softmax(logits / T) ``(N, C)``."""
        from mtkd.study.analysis import softmax
        _, z = self.teacher_logits(task, split)
        return {t: softmax(z[:, i], T) for i, t in enumerate(self.teachers(task))}

    def fusers(self, task: str) -> list[str]:
        """Fusers of the run's multi-teacher students for this task (``multi:<fuser>`` methods)."""
        return [Method.parse(m).name for m in self.methods(task, kinds=("multi",))]

    def fused_targets(self, task: str, split: str = "test") -> dict[str, np.ndarray]:
        """Fuser -> fused target probabilities ``(N, C)`` at T=1, rows aligned with :meth:`teacher_logits`.

        Recomputed with :func:`mtkd.kd.fusion.fuse` from the cached teacher logits and
        ``fusion/<task>.json`` (weights, temperatures, region weights) for every non-gating fuser
        among the run's ``multi:<fuser>`` methods; gating depends on the student and is read from
        :meth:`gates` instead. Label-aware fusers (ca_mkd, curriculum) use the gold labels on the
        train split only (what the students learned from; curriculum at its end, t = 1); on the
        held-out splits they are their label-free fallback, ebkd (see
        ``mtkd.study.fusion_args.FUSION_LABEL_SPLITS``).
        """
        def compute():
            idx, z = self.teacher_logits(task, split)
            labels = None
            if split in FUSION_LABEL_SPLITS:
                labels = self.examples(task, split).set_index("idx").loc[idx, "label"].to_numpy()
            return static_targets(z, self.fusion_info(task), self.fusers(task), labels)

        return self._cached(("fused", task, split), compute)

    def _per_example_weights(self, name: str, columns, task: str, split: str) -> pd.DataFrame:
        """Rows of a per-example weights file for one task and split; empty when the run has none."""
        def load():
            f = self.path / name
            if not f.exists():
                return pd.DataFrame(columns=list(columns))
            df = pd.read_parquet(f)
            missing = set(columns) - set(df.columns)
            if missing:
                raise ValueError(f"{f} lacks columns {sorted(missing)}; {_hint(self.path)}")
            return df

        df = self._cached(name, load)
        return df[(df["task"] == task) & (df["split"] == split)].reset_index(drop=True)

    def gates(self, task: str, split: str = "test") -> pd.DataFrame:
        """Rows of ``gates.parquet`` for one task and split (method, seed, idx, weights); empty if absent."""
        return self._per_example_weights("gates.parquet", GATE_COLUMNS, task, split)

    def fusion_weights(self, task: str, split: str = "test") -> pd.DataFrame:
        """Rows of ``fusion_weights.parquet`` for one task and split (method, idx, weights, applied): each
        weighted-sum fuser's per-example weights over teachers; empty if absent (a run of older code)."""
        return self._per_example_weights("fusion_weights.parquet", FUSION_WEIGHT_COLUMNS, task, split)


def load_run(run_dir: str | Path) -> RunResults:
    """Open a run folder's results; files are read on first use and cached."""
    return RunResults(run_dir)
