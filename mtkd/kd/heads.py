"""The sentence vector a classifier's head sees: the model's own [CLS] pooler, or the mean of the last
layer (``student.pooling: mean``); the gating fuser reads the same vector."""
from __future__ import annotations

import torch
from torch import nn


class MeanPooler(nn.Module):
    """In place of a BERT pooler (dense + tanh on [CLS]): the mean of the last layer over the real tokens.

    Sentence encoders such as all-MiniLM-L6-v2 are trained with mean pooling: their [CLS] carries
    little in the first layers, and a 3-layer student on [CLS] stays at the class prior on SNLI, where
    the same student on the mean learns (benchmarks/README.md). The attention mask comes from the
    model's forward call (`use_mean_pooling` keeps it here)."""

    def __init__(self):
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        mask = self.mask if self.mask is not None and self.mask.shape == hidden.shape[:2] \
            else torch.ones(hidden.shape[:2], device=hidden.device)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def use_mean_pooling(model, name: str = "the model") -> None:
    """Swap the pooler of a BERT-family classifier for MeanPooler (``pooling: mean``)."""
    base = model.base_model
    if not isinstance(getattr(base, "pooler", None), nn.Module):
        raise ValueError(f"pooling: mean needs a BERT-family model with a pooler; {name} "
                         f"({type(model).__name__}) has none: use pooling: cls")
    pooler = base.pooler = MeanPooler()

    def keep_mask(_module, args, kwargs):
        pooler.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    model.register_forward_pre_hook(keep_mask, with_kwargs=True)


def sentence_features(model, outputs) -> torch.Tensor:
    """The vector the head sees (before its dense layers), for the gating fuser: [CLS] or the mean."""
    pooler = getattr(model.base_model, "pooler", None)
    hidden = outputs.hidden_states[-1]
    return pooler(hidden) if isinstance(pooler, MeanPooler) else hidden[:, 0]
