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
