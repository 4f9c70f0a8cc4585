"""What a run will do and roughly how long it takes, from the params alone (for --dry-run)."""
from __future__ import annotations

from .pipeline import Run, plan, student_methods

# Rough training throughput (examples per second, batch 32, ~32 tokens) by model size and device,
# measured on a 2-core CPU (assets.md) and scaled for one modern GPU.
THROUGHPUT = {"cpu": {"tiny": 2000, "small": 80, "base": 8, "large": 3},
              "cuda": {"tiny": 20000, "small": 3000, "base": 900, "large": 300}}
SIZE = {"tiny-bert": "tiny", "minilm-l6": "small", "mpnet-base": "base", "distilbert-base-uncased": "base",
        "microsoft/deberta-base": "base", "bert-large-uncased": "large", "roberta-large": "large"}


def _seconds(model: str, examples: int, epochs: int, device: str, mode: str = "finetune") -> float:
    if mode == "tfidf":
        return examples / 2000
    rate = THROUGHPUT[device][SIZE.get(model, "base")]
    if mode == "probe":
        return examples / (rate * 4)
    return examples * epochs / rate


def describe_plan(run: Run) -> list[str]:
    device = run.ctx.device.type
    lines = [f"device {device}, precision {run.params.precision}, seeds {list(run.params.seeds)}"]
    total = 0.0
    for task in run.tasks:
        n = len(run.task(task).splits["train"])
        for name, t in run.params.teachers.items():
            s = _seconds(t["model"], n, t["epochs"], device, t["mode"])
            total += s
            lines.append(f"teacher {task}/{name}: {t['mode']} {t['model']} on {n:,} examples, ~{s / 60:.1f} min")
        st = run.params.student
        per = _seconds(st.model, n, st.epochs, device) * (0.5 if st.layers else 1.0)
        k = len(student_methods(run)) * len(run.params.seeds)
        total += per * k
        lines.append(f"students {task}: {k} trainings x ~{per / 60:.1f} min")
    sweep = len(plan(run, "sweep")) if run.params.sweep.enabled and (run.dir / "fusion").exists() else 0
    lines.append(f"units: teachers {len(plan(run, 'teachers'))}, students {len(plan(run, 'students'))}"
                 + (f", sweep {sweep}" if sweep else ""))
    lines.append(f"estimated wall time: ~{total / 3600:.1f} h on this device (rough; teachers dominate on GPUs)")
    return lines
