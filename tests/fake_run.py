"""A small, fully consistent run folder in the docs/design.md layout (test support only)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SPLITS = ("train", "selection", "test")
STUDENT_SPLITS = ("selection", "test")


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _f1(pred, y):
    tp = int(((pred == 1) & (y == 1)).sum())
    fp, fn = int(((pred == 1) & (y == 0)).sum()), int(((pred == 0) & (y == 1)).sum())
    return 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _score(metric, pred, y):
    return 100.0 * float((pred == y).mean()) if metric == "accuracy" else _f1(pred, y)


def write_fake_run(run_dir, tasks=("toy3", "toy2"), n=60, seeds=(42, 43), teachers=("a", "b", "c"), rng=0):
    """Write the run folder and return its path.

    A task named ``...<digit>`` has that many classes (``toy3`` -> 3), otherwise 2; 3-class
    tasks have two text fields. Each split has ``n`` examples with idx unique across splits.
    The first three examples of every split are forced into full disagreement, partial
    disagreement and all-agree-but-wrong (when K and C allow). Methods: baseline,
    single:<t>, multi:average, multi:weighted, multi:gating; teachers on all splits.
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(rng)
    teachers, seeds, K = list(teachers), [int(s) for s in seeds], len(teachers)
    fusers = ["average", "weighted", "gating"] if K >= 2 else []
    params = {"run_name": run.name, "seeds": seeds, "data": {"tasks": list(tasks)},
              "teachers": {t: {"model": "tiny-random"} for t in teachers},
              "student": {"model": "tiny-random"}, "distill": {"temperature": 6.0, "alpha": 0.7,
                                                               "methods": ["baseline", "single", *fusers]}}
    (run / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    preds, gates, master = [], [], []
    for ti, task in enumerate(tasks):
        C = int(task[-1]) if task[-1].isdigit() else 2
        fields = ["premise", "hypothesis"] if C >= 3 else ["text"]
        metrics = ["accuracy"] if C >= 3 else ["f1", "accuracy"]
        labels_names = [f"class{i}" for i in range(C)]
        d = run / "data" / task
        d.mkdir(parents=True, exist_ok=True)
        (d / "task.json").write_text(json.dumps({"name": task, "text_fields": fields, "label_names": labels_names,
                                                 "metrics": metrics, "source": "fake", "license": "CC0",
                                                 "group_key": None}))
        ex, z_by = [], {}
        for si, split in enumerate(SPLITS):
            idx = np.arange(n, dtype=np.int64) * 3 + si + 1000 * ti      # unique, increasing, not contiguous
            y = r.integers(0, C, n)
            y[:3] = 0
            frame = pd.DataFrame({"split": split, "idx": idx, "label": y})
            for f in fields:
                frame[f] = [f"{f} <{split} {i}> & words" for i in idx]
            ex.append(frame)
            z = r.normal(0, 1.2, (n, K, C)) + 2.0 * np.eye(C)[y][:, None, :] * r.uniform(0.8, 2.0, (1, K, 1))
            big = np.full((K, C), -3.0)
            if K >= 3 and C >= 3:                                   # 0: every teacher a different class
                z[0] = big.copy(); z[0][np.arange(K), np.arange(K) % C] = 3.0
            if K >= 2:                                              # 1: teacher 0 differs from the rest
                z[1] = big.copy(); z[1][:, 0] = 3.0; z[1][0, 0] = -3.0; z[1][0, 1] = 3.0
            z[2] = big.copy(); z[2][:, 1] = 3.0                     # 2: all agree, all wrong
            z_by[split] = (idx, y, z.astype(np.float32))
            for k, t in enumerate(teachers):
                ld = run / "logits" / task / t
                ld.mkdir(parents=True, exist_ok=True)
                np.savez(ld / f"{split}.npz", logits=z[:, k].astype(np.float32), idx=idx)
                (ld / f"{split}.json").write_text(json.dumps({"model": "tiny-random", "params_hash": "0" * 12,
                                                              "label_names": labels_names, "dtype": "float32",
                                                              "shape": [n, C]}))
                p = _softmax(z[:, k])
                preds.append(pd.DataFrame({"task": task, "method": f"teacher:{t}", "kind": "teacher",
                                           "seed": seeds[0], "split": split, "idx": idx, "label": y,
                                           "pred": p.argmax(1), "probs": list(p)}))
        pd.concat(ex, ignore_index=True).to_parquet(d / "examples.parquet", index=False)
        idx_s, y_s, z_s = z_by["selection"]
        sel = {t: 100.0 * float((z_s[:, k].argmax(1) == y_s).mean()) for k, t in enumerate(teachers)}
        w = {t: sel[t] / sum(sel.values()) for t in teachers}
        (run / "fusion").mkdir(exist_ok=True)
        (run / "fusion" / f"{task}.json").write_text(json.dumps({
            "teachers": teachers, "best_teacher": max(sel, key=sel.get), "selection_scores": sel,
            "weights": w, "temperatures": {t: 1.0 + 0.5 * k for k, t in enumerate(teachers)}}))
        methods = [("baseline", "baseline")] + [(f"single:{t}", "single") for t in teachers]
        methods += [(f"multi:{f}", "multi") for f in fusers]
        for split in STUDENT_SPLITS:
            idx, y, z = z_by[split]
            for method, kind in methods:
                for seed in seeds:
                    if kind == "single":
                        target = z[:, teachers.index(method.split(":")[1])].argmax(1)
                    elif kind == "multi":
                        target = z.mean(1).argmax(1)
                    else:
                        target = r.integers(0, C, n)
                    noise = r.random(n)
                    pred = np.where(noise < 0.6, target, np.where(noise < 0.8, y, r.integers(0, C, n)))
                    logit = r.normal(0, 1, (n, C)) + 3.0 * np.eye(C)[pred]
                    preds.append(pd.DataFrame({"task": task, "method": method, "kind": kind, "seed": seed,
                                               "split": split, "idx": idx, "label": y, "pred": pred,
                                               "probs": list(_softmax(logit))}))
                    if method == "multi:gating":
                        gw = _softmax(r.normal(0, 1, (n, K)))
                        gates.append(pd.DataFrame({"task": task, "method": method, "seed": seed, "split": split,
                                                   "idx": idx, "weights": list(gw)}))
    pr = pd.concat(preds, ignore_index=True)
    pr["probs"] = [list(map(float, p)) for p in pr["probs"]]
    pr.to_parquet(run / "predictions.parquet", index=False)
    if gates:
        g = pd.concat(gates, ignore_index=True)
        g["weights"] = [list(map(float, w)) for w in g["weights"]]
        g.to_parquet(run / "gates.parquet", index=False)
    for (task, method, kind, seed, split), grp in pr.groupby(["task", "method", "kind", "seed", "split"], sort=False):
        for metric in json.loads((run / "data" / task / "task.json").read_text())["metrics"]:
            master.append({"task": task, "method": method, "kind": kind, "seed": seed, "split": split,
                           "metric": metric, "score": _score(metric, grp["pred"].to_numpy(), grp["label"].to_numpy())})
    m = pd.DataFrame(master)
    m.to_csv(run / "master_results.csv", index=False)
    head = m[m["split"] == "test"].merge(m.drop_duplicates("task")[["task", "metric"]], on=["task", "metric"])
    s = head.groupby(["task", "method", "kind", "metric"], sort=False)["score"].agg(["mean", "count"]).reset_index()
    s = s.rename(columns={"count": "n_seeds"}).assign(ci_low=lambda f: f["mean"] - 2, ci_high=lambda f: f["mean"] + 2)
    s.to_csv(run / "summary.csv", index=False)
    comp = []
    for task in tasks:
        st = s[s["task"] == task]
        bs = st[st["kind"] == "single"].sort_values("mean").iloc[-1]
        bm = st[st["kind"] == "multi"].sort_values("mean").iloc[-1] if fusers else bs
        diff = bm["mean"] - bs["mean"]
        comp.append({"task": task, "a": bm["method"], "b": bs["method"], "diff_pp": diff, "ci_low": diff - 3,
                     "ci_high": diff + 3, "p_value": 0.5, "p_adjusted": 0.5, "significant": False})
    pd.DataFrame(comp).to_csv(run / "comparisons.csv", index=False)
    sel = m[m["split"] == "selection"].groupby(["task", "kind", "method"], sort=False)["score"].mean().reset_index()
    pick = lambda t, k: sel[(sel["task"] == t) & (sel["kind"] == k)].sort_values("score")["method"].iloc[-1]
    (run / "choices.json").write_text(json.dumps(
        {t: {"best_single": pick(t, "single"), **({"best_multi": pick(t, "multi")} if fusers else {})} for t in tasks}))
    return run


def write_fake_results(run_dir, n_boot=200):
    """Rewrite summary.csv, comparisons.csv, choices.json and success_metrics.json from the fake predictions with
    mtkd's own statistics: notebook 08 reads their verdicts, variance components and headline. Each task.json
    gets the run's data_key, so the run reads its prepared splits (the fake tasks are in no registry)."""
    from mtkd.study import collect, io, stats
    from mtkd.study.pipeline import Run
    run = Run.open(run_dir)
    for task in run.tasks:
        f = run.dir / "data" / task / "task.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), "data_key": run.data_key(task)}))
    predictions = pd.read_parquet(run.dir / "predictions.parquet")
    metrics = collect.headline_metrics(run)
    summary = stats.summarise(predictions, metrics, "test", n_boot)
    best = {kind: stats.choose_best(predictions, metrics, kind) for kind in ("single", "multi")}
    choice = {t: {"best_single": best["single"][t], "best_multi": best["multi"][t]} for t in run.tasks}
    comparisons = stats.compare(predictions, metrics, choice, "test", n_boot)
    io.write_csv(run.dir / "summary.csv", summary)
    io.write_csv(run.dir / "comparisons.csv", comparisons)
    io.write_json(run.dir / "choices.json", choice)
    io.write_json(run.dir / "success_metrics.json", collect.success_metrics(run, summary, comparisons, choice))
    return run.dir


# (axis, param, values in order, the main study's value); a teachers axis names teacher subsets joined by "+"
FAKE_AXES = (("transfer", "distill.transfer_size", ("0", "120"), "0"),
             ("teachers", "teachers", ("a+b", "a+b+c"), "a+b+c"))
FAKE_DIFFERENCES = {"better": (2.5, 1.5, 0.004, 0.9), "worse": (-2.5, 1.5, 0.004, 0.9),   # diff, half width,
                    "equivalent": (0.2, 0.6, 0.6, 0.01)}                                   # p (Holm), TOST p (Holm)


def _comparison_row(comparison, a, b, metric, verdict, diff, half, p_adj, eq_adj):
    return {"comparison": comparison, "a": a, "b": b, "metric": metric, "diff_pp": diff, "ci_low": diff - half,
            "ci_high": diff + half, "p_value": p_adj / 2, "p_adjusted": p_adj,
            "significant": verdict in ("better", "worse"),
            "equivalence_p": eq_adj / 2, "equivalence_p_adjusted": eq_adj, "verdict": verdict, "margin_pp": 1.0,
            "mde_pp": 1.2 * half, "se_pp": half / 1.96, "df": 1999.0}


def _fidelity(kind, mean, baseline, best_teacher, target, r, blank):
    """The fidelity columns of one student (NaN for teachers and the baseline, and where ``blank``)."""
    if kind in ("teacher", "baseline"):
        return {"target_score": np.nan, "agreement_pct": np.nan, "kl_target_student": np.nan, "gap_closed": np.nan,
                "gap_closed_undefined": np.nan}
    if blank:
        return {"target_score": np.nan, "agreement_pct": np.nan, "kl_target_student": np.nan, "gap_closed": np.nan,
                "gap_closed_undefined": "the best teacher is not above the no-KD baseline"}
    return {"target_score": target, "agreement_pct": r.uniform(70, 95), "kl_target_student": r.uniform(0.05, 0.6),
            "gap_closed": (mean - baseline) / (best_teacher - baseline), "gap_closed_undefined": np.nan}


def write_fake_conditions(run_dir, axes=FAKE_AXES, verdicts=None, above_teacher=(), no_fidelity=(), task_axes=None,
                          rng=0):
    """Write conditions.csv, conditions_summary.csv and fidelity.csv consistent with a fake run's tasks, teachers
    and fusers; returns the run folder.

    ``verdicts``: {(task, axis, value): verdict} of the best-multi-vs-best-single rows (default inconclusive, each
    with its own interval width), with a difference and interval that agree with the verdict; best multi's mean
    is best single's plus that difference. ``above_teacher``: the (task, axis, value) points whose best multi's
    fused target scores above the best teacher (every other fused target scores below it). ``no_fidelity``:
    (task, axis) pairs whose fidelity columns are empty (gap closed with its reason). ``task_axes``: {task: [axis
    names]} to give a task only some axes. Condition rows are written in reverse ``order``: readers must sort.
    """
    run = Path(run_dir)
    params = yaml.safe_load((run / "params.yaml").read_text())
    r = np.random.default_rng(rng)
    verdicts = verdicts or {}
    fusers = [m for m in params["distill"]["methods"] if m not in ("baseline", "single")]
    cond, summ = [], []
    for task in params["data"]["tasks"]:
        metric = json.loads((run / "data" / task / "task.json").read_text())["metrics"][0]
        for axis, param, values, main_value in axes:
            if task_axes is not None and axis not in task_axes.get(task, ()):
                continue
            for order, value in reversed(list(enumerate(values))):
                key = {"task": task, "axis": axis, "param": param, "value": value, "order": order,
                       "is_main": value == main_value}
                teachers = value.split("+") if param == "teachers" else list(params["teachers"])
                t_score = {t: 70 + r.uniform(0, 10) for t in teachers}
                top = max(t_score.values())
                baseline = top - 6 - r.uniform(0, 2)
                s_score = {t: t_score[t] - 1.5 - r.uniform(0, 2) for t in teachers}
                single = max(s_score, key=s_score.get)
                verdict = verdicts.get((task, axis, value), "inconclusive")
                undecided = (r.uniform(-1, 1), 2 + 3 * r.random(), 0.4, 0.4)
                diff, half, p_adj, eq_adj = FAKE_DIFFERENCES.get(verdict, undecided)
                best_multi = fusers[int(r.integers(len(fusers)))]
                m_score = {f: s_score[single] + diff - (0 if f == best_multi else 0.5 + r.uniform(0, 1))
                           for f in fusers}
                rows = [_comparison_row("best multi vs best single", f"multi:{best_multi}", f"single:{single}",
                                        metric, verdict, diff, half, p_adj, eq_adj)]
                rows += [_comparison_row("multi vs best single", f"multi:{f}", f"single:{single}", metric,
                                         "inconclusive", m_score[f] - s_score[single], 2.5, 0.5, 0.5)
                         for f in fusers if f != best_multi]
                rows.append(_comparison_row("best single vs baseline", f"single:{single}", "baseline", metric,
                                            "better", s_score[single] - baseline, 1.5, 0.004, 0.9))
                cond += [{**key, **row} for row in rows]
                blank = (task, axis) in no_fidelity
                methods = [(f"teacher:{t}", "teacher", "teacher", s, np.nan) for t, s in t_score.items()]
                methods.append(("baseline", "baseline", "baseline", baseline, np.nan))
                methods += [(f"single:{t}", "single", "best single" if t == single else "single", s, t_score[t])
                            for t, s in s_score.items()]
                above = (task, axis, value) in above_teacher
                methods += [(f"multi:{f}", "multi", "best multi" if f == best_multi else "multi", s,
                             top + 0.6 if above and f == best_multi else top - 0.5 - r.uniform(0, 2))
                            for f, s in m_score.items()]
                for method, kind, role, mean, target in methods:
                    summ.append({**key, "method": method, "kind": kind, "role": role, "mean": mean,
                                 "ci_low": mean - 1.5, "ci_high": mean + 1.5,
                                 "n_seeds": 1 if kind == "teacher" else len(params["seeds"]),
                                 **_fidelity(kind, mean, baseline, top, target, r, blank)})
    pd.DataFrame(cond).to_csv(run / "conditions.csv", index=False)
    pd.DataFrame(summ).to_csv(run / "conditions_summary.csv", index=False)
    s = pd.read_csv(run / "summary.csv")
    choices = json.loads((run / "choices.json").read_text())
    fid = []
    for task, st in s.groupby("task", sort=False):
        means = st.set_index("method")["mean"]
        top = means[st.set_index("method")["kind"] == "teacher"].max()
        best = {choices[task]["best_single"]: "best single", choices[task].get("best_multi"): "best multi"}
        for row in st.itertuples():
            target = means[f"teacher:{row.method.split(':')[1]}"] if row.kind == "single" else top - 1.0
            fid.append({"task": task, "method": row.method, "kind": row.kind,
                        "role": best.get(row.method, row.kind), "mean": row.mean, "ci_low": row.ci_low,
                        "ci_high": row.ci_high, "n_seeds": row.n_seeds,
                        **_fidelity(row.kind, row.mean, means["baseline"], top, target, r, False)})
    pd.DataFrame(fid).to_csv(run / "fidelity.csv", index=False)
    return run
