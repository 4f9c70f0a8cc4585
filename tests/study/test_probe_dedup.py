"""The probe teacher embeds each distinct text once (SNLI premises repeat): the features are the same."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtkd.data import models

from mtkd.study import teachers
from mtkd.kd.loop import embed, encode


def test_probe_features_equal_embedding_every_row():
    frame = pd.DataFrame({"premise": ["A dog runs.", "A dog runs.", "Two men cook.", "A dog runs.", "Rain."],
                          "hypothesis": ["An animal moves.", "A cat sleeps.", "People make food.", "A dog.", "Sun."]})

    class Task:
        name, text_fields = "pairs", ("premise", "hypothesis")

    ctx = teachers.Context(device=torch.device("cpu"), dtype=None, max_length=32, seed=0, eval_batch_size=2)
    got = teachers._probe_features(Task, {"model": "minilm-l6"}, ctx, frame)
    mspec = models.resolve("minilm-l6")
    tok, encoder = models.load_tokenizer(mspec), models.load_encoder(mspec)
    u, v = (embed(encoder, encode(tok, frame, [f], 32), device=ctx.device, dtype=None, batch_size=2)
            for f in Task.text_fields)
    np.testing.assert_allclose(got, np.concatenate([u, v, np.abs(u - v), u * v], axis=1), atol=1e-5)
