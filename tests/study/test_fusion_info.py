"""What the study gives the fusers from the literature: region weights fitted on the selection split,
W (3, K) from fusion/<task>.json, labels only where the students learn, and the label-free fallback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtkd.kd.fusion import agreement_region_index
from mtkd.study.analysis import REGIONS, agreement_regions
from mtkd.study.fusion_args import FUSION_LABEL_SPLITS, fuser_arguments, fuser_kwargs
from mtkd.study.pipeline import fit_region_weights

TEACHERS = ["a", "b", "c"]


def logits_of(preds) -> np.ndarray:
    """(N, K, C=3) logits whose argmax is preds (N, K)."""
    return 2.0 * np.eye(3)[np.asarray(preds)]


def test_region_weights_by_hand():
    preds = [[0, 0, 0], [1, 1, 1],        # all agree; right on the first (label 0), wrong on the second (label 0)
             [0, 0, 1], [1, 2, 2]]        # partial; labels 1 and 2: teacher c right twice, b once, a never
    labels = np.array([0, 0, 1, 2])
    w, counts = fit_region_weights(logits_of(preds), labels, TEACHERS)
    assert counts == {"all_agree": 2, "partial": 2, "full_disagree": 0}
    # all_agree: accuracies (1/2, 1/2, 1/2) -> 1/3 each; partial: (0, 1/2, 1) -> (0, 1/3, 2/3);
    # full_disagree has no selection example: overall accuracies (1/4, 2/4, 3/4) -> (1/6, 2/6, 3/6)
    expected = {"all_agree": [1 / 3] * 3, "partial": [0, 1 / 3, 2 / 3], "full_disagree": [1 / 6, 2 / 6, 3 / 6]}
    for r in REGIONS:
        np.testing.assert_allclose([w[t][r] for t in TEACHERS], expected[r], atol=1e-12)


def test_a_region_where_no_teacher_is_right_falls_back_to_overall_accuracy():
    preds = [[0, 1, 2], [0, 0, 0], [1, 1, 0]]        # full (label 3 with C=4: nobody right), agree, partial
    z = 2.0 * np.eye(4)[np.asarray(preds)]
    w, _ = fit_region_weights(z, np.array([3, 0, 0]), TEACHERS)
    # overall accuracies: a 1/3, b 1/3, c 2/3 -> (1/4, 1/4, 1/2)
    np.testing.assert_allclose([w[t]["full_disagree"] for t in TEACHERS], [0.25, 0.25, 0.5])
    np.testing.assert_allclose([w[t]["partial"] for t in TEACHERS], [0, 0, 1])


def test_fuser_kwargs_builds_W_with_one_row_per_region():
    info = {"teachers": TEACHERS, "region_weights": {
        "a": {"all_agree": 0.1, "partial": 0.2, "full_disagree": 0.3},
        "b": {"all_agree": 0.4, "partial": 0.5, "full_disagree": 0.6},
        "c": {"all_agree": 0.5, "partial": 0.3, "full_disagree": 0.1}}}
    assert fuser_kwargs(info, "region_weighted") == {"region_weights": [[0.1, 0.4, 0.5], [0.2, 0.5, 0.3],
                                                                       [0.3, 0.6, 0.1]]}
    assert fuser_kwargs(info, "ca_mkd") == {} and fuser_kwargs(info, "curriculum") == {}


def test_fuser_kwargs_names_missing_region_weights():
    with pytest.raises(ValueError, match="no 'region_weights' for teacher 'a'.*--force logits"):
        fuser_kwargs({"teachers": TEACHERS}, "region_weighted")


def test_fuser_arguments_labels_or_the_label_free_fallback():
    y = np.array([0, 1])
    assert fuser_arguments({"teachers": TEACHERS}, "ca_mkd", y)[0] == "ca_mkd"
    name, kw = fuser_arguments({"teachers": TEACHERS}, "curriculum", y)
    assert name == "curriculum" and kw["progress"] == 1.0 and kw["labels"] is y
    assert fuser_arguments({"teachers": TEACHERS}, "ca_mkd", None) == ("ebkd", {})
    assert fuser_arguments({"teachers": TEACHERS}, "curriculum", None) == ("ebkd", {})
    assert fuser_arguments({"teachers": TEACHERS}, "ebkd", None) == ("ebkd", {})
    assert FUSION_LABEL_SPLITS == ("train",)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fusion_regions_are_the_agreement_analysis_regions(k):
    rng = np.random.default_rng(k)
    z = rng.normal(size=(300, k, 4))
    z[:50] = z[:50, :1]                                   # some rows where every teacher is the same
    ours = agreement_region_index(torch.from_numpy(z)).numpy()
    theirs = agreement_regions(z.argmax(2))
    assert (np.array(REGIONS)[ours] == theirs).all()
