"""Fidelity beside accuracy: how closely a student follows the target it was distilled from.

Matching the teacher and generalising are different things (Stanton et al., NeurIPS 2021, "Does knowledge
distillation really work?"): a student can score well while disagreeing with its teacher, and a fused
target can be less accurate than the best teacher it fuses, in which case its student cannot be expected
to beat that teacher. Per student method, on the test split:

    agreement_pct      = 100 * mean_i [argmax s_i == argmax p_i]               (top-1 agreement)
    kl_target_student  = mean_i sum_c p_ic (log p_ic - log s_ic)                (nats, at T = 1)
    target_score       = the task's metric of argmax p_i against the gold labels

where p is the target's softmax (the teacher for ``single:<t>``; the fused target for ``multi:<fuser>``:
label-aware fusers as their label-free fallback, since test labels are never a target; gating with the
student's own gate weights, per seed) and s the student's, each averaged over seeds. The baseline has no
target. ``gap_closed`` = (student - baseline) / (best teacher - baseline), not defined (with its reason)
when the best teacher is not above the baseline.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mtkd.study.methods import Method

PROB_FLOOR = 1e-12      # a float32 softmax can round a probability to 0: its log is taken at this floor


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def agreement_pct(target_probs: np.ndarray, student_pred: np.ndarray) -> float:
    """Top-1 agreement of the student's predictions with the target's argmax, in percent."""
    return float(100.0 * np.mean(np.asarray(student_pred) == np.asarray(target_probs).argmax(1)))


def kl_target_student(target_probs: np.ndarray, student_probs: np.ndarray) -> float:
    """Mean over examples of KL(target || student) in nats (the KD term's direction, at T = 1)."""
    p = np.asarray(target_probs, dtype=np.float64)
    q = np.clip(np.asarray(student_probs, dtype=np.float64), PROB_FLOOR, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.clip(p, PROB_FLOOR, 1.0)) - np.log(q)), 0.0)
    return float(terms.sum(1).mean())


def static_targets(teacher_logits: np.ndarray, info: dict, fusers: list[str],
                   labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fuser -> target probabilities (N, C) at T=1 for every fuser that is not learned, from the teachers'
    logits (N, K, C) and the fusion info; label-aware fusers use ``labels`` where given (the train split)
    and their label-free fallback where not (held-out splits)."""
    import torch
    from mtkd.kd.fusion import LEARNED_FUSERS, fuse
    from mtkd.study.fusion_args import fuser_arguments
    z = torch.as_tensor(teacher_logits, dtype=torch.float32)
    out = {}
    for fuser in fusers:
        if fuser in LEARNED_FUSERS:
            continue
        applied, kw = fuser_arguments(info, fuser, labels)
        with torch.no_grad():
            out[fuser] = softmax(fuse(applied, z, **kw).double().numpy())
    return out


def gated_target(teacher_logits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The gate's fused target: sum_k w_ik z_ik, as probabilities."""
    return softmax(np.einsum("nkc,nk->nc", np.asarray(teacher_logits, np.float64), np.asarray(weights, np.float64)))


def role(method: str, kind: str, choice: dict) -> str:
    """What a method is in its study: teacher, baseline, best single, best multi, single or multi."""
    if method == choice.get("best_single"):
        return "best single"
    if method == choice.get("best_multi"):
        return "best multi"
    return kind


def fidelity_rows(task: str, metric: str, students: pd.DataFrame, idx: np.ndarray,
                  teacher_logits: dict[str, np.ndarray], info: dict, gates: pd.DataFrame, summary: pd.DataFrame,
                  choice: dict) -> pd.DataFrame:
    """One row per method of ``summary`` (one task): its score with interval, its role and its fidelity.

    ``students``: the task's test-split prediction rows of its students (method, seed, idx, pred, probs,
    label); ``idx`` and ``teacher_logits`` (teacher -> (N, C), in teacher order): the test examples and
    the teachers' logits on them; ``gates``: the gating students' test weights (method, seed, idx,
    weights); ``summary``: summary.csv's rows of the task (teachers included); ``info``: the fusion info
    the fusers used; ``choice``: best_single and best_multi as chosen on selection."""
    from mtkd.data.metrics import score
    from mtkd.study.analysis import gap_closed, gap_closed_undefined
    teachers = list(teacher_logits)
    stack = np.stack([teacher_logits[t] for t in teachers], axis=1)          # (N, K, C)
    s = summary.set_index("method")
    best_teacher = s[s.kind == "teacher"]["mean"].max()
    baseline = float(s.loc["baseline", "mean"]) if "baseline" in s.index else float("nan")
    reason = gap_closed_undefined(baseline, best_teacher)
    fusers = [Method.parse(m).name for m in s.index if Method.parse(m).kind == "multi"]
    targets = static_targets(stack, info, fusers)
    rows = []
    for method, r in s.iterrows():
        m = Method.parse(method)
        row = {"task": task, "method": method, "kind": r["kind"], "role": role(method, r["kind"], choice),
               "mean": r["mean"], "ci_low": r["ci_low"],
               "ci_high": r["ci_high"], "n_seeds": int(r["n_seeds"]), "target_score": np.nan,
               "agreement_pct": np.nan, "kl_target_student": np.nan, "gap_closed": np.nan,
               "gap_closed_undefined": None}
        if m.kind in ("single", "multi"):
            by_seed = students[students.method == method]
            agree, kl, tscore = [], [], []
            for seed, g in by_seed.groupby("seed", sort=True):
                if not np.array_equal(g["idx"].to_numpy(), idx):
                    raise ValueError(f"task {task!r}, {method} seed {seed}: predictions are not on the teachers' "
                                     "test examples in their order; re-run the results stage")
                labels = g["label"].to_numpy()
                if m.kind == "single":
                    p = softmax(teacher_logits[m.name])
                elif m.name in targets:
                    p = targets[m.name]
                else:                                             # learned: the student's own gate
                    w = gates[(gates.method == method) & (gates.seed == seed)]
                    if not np.array_equal(w["idx"].to_numpy(), g["idx"].to_numpy()):
                        raise ValueError(f"task {task!r}, {method} seed {seed}: gate weights and predictions "
                                         "are not on the same test examples; re-run the results stage")
                    p = gated_target(stack, np.stack(w["weights"].to_numpy()))
                agree.append(agreement_pct(p, g["pred"].to_numpy()))
                kl.append(kl_target_student(p, np.stack(g["probs"].to_numpy())))
                tscore.append(score(metric, p.argmax(1), labels))
            row.update(target_score=float(np.mean(tscore)), agreement_pct=float(np.mean(agree)),
                       kl_target_student=float(np.mean(kl)))
            row["gap_closed"] = np.nan if reason else gap_closed(r["mean"], baseline, best_teacher)
            row["gap_closed_undefined"] = reason
        rows.append(row)
    return pd.DataFrame(rows)
