"""The human-distribution metrics on hand-made distributions with values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mtkd.study import humans as H


def test_human_distribution_and_agreement_levels():
    counts = np.array([[5, 0, 0], [1, 4, 0], [2, 0, 3], [2, 2, 1], [0, 0, 0]])
    shares = H.human_distribution(counts)
    np.testing.assert_allclose(shares[:4], [[1, 0, 0], [.2, .8, 0], [.4, 0, .6], [.4, .4, .2]])
    assert np.isnan(shares[4]).all()
    assert list(H.agreement_level(counts)) == ["5/5", "4/5", "3/5", "2/5", ""]
    assert list(H.has_counts(counts)) == [True, True, True, True, False]


def test_entropy_and_kl_by_hand():
    np.testing.assert_allclose(H.entropy([[1, 0, 0], [.5, .5, 0], [1 / 3, 1 / 3, 1 / 3]]),
                               [0, math.log(2), math.log(3)])
    # KL((.5,.5) || (.25,.75)) = .5 ln 2 + .5 ln(2/3)
    assert H.kl_divergence([[.5, .5]], [[.25, .75]])[0] == pytest.approx(.5 * math.log(2) + .5 * math.log(2 / 3))
    # 0 ln 0 = 0: a class nobody chose costs nothing, whatever the model puts there
    assert H.kl_divergence([[1, 0]], [[.5, .5]])[0] == pytest.approx(math.log(2))
    assert H.kl_divergence([[.2, .8]], [[.2, .8]])[0] == pytest.approx(0)
    # the model puts 0 on a chosen class: the floor keeps it finite and large
    assert H.kl_divergence([[.5, .5]], [[1, 0]])[0] == pytest.approx(.5 * math.log(.5) + .5 * math.log(.5 / H.EPS), rel=1e-9)


def test_js_distance_is_the_square_root_base_2():
    # disjoint supports: JSD = 1 bit, distance 1
    assert H.js_distance([[1, 0]], [[0, 1]])[0] == pytest.approx(1)
    # p = (1, 0), q = (.5, .5): m = (.75, .25); KL(p||m) = ln(4/3), KL(q||m) = .5 ln(2/3) + .5 ln 2
    jsd = (math.log(4 / 3) + .5 * math.log(2 / 3) + .5 * math.log(2)) / 2 / math.log(2)
    assert H.js_distance([[1, 0]], [[.5, .5]])[0] == pytest.approx(math.sqrt(jsd))
    assert H.js_distance([[.3, .7]], [[.3, .7]])[0] == pytest.approx(0, abs=1e-7)


def test_tempered_matches_softmax_of_scaled_logits():
    z = np.array([[2.0, 0.0, -1.0]])
    q = np.exp(z) / np.exp(z).sum()
    want = np.exp(z / 2) / np.exp(z / 2).sum()
    np.testing.assert_allclose(H.tempered(q, 2.0), want)
    np.testing.assert_allclose(H.softmax(z), q)


def test_fitted_temperature_recovers_a_known_one():
    # humans = softmax(z / 3) exactly: the KL is 0 at T = 3 and positive elsewhere
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(50, 3))
    human = np.exp(z / 3) / np.exp(z / 3).sum(1, keepdims=True)
    q = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert H.fit_temperature(q, human) == pytest.approx(3.0, rel=1e-4)


def test_fitted_temperature_two_class_closed_form():
    # q = (.9, .1) everywhere, humans (.75, .25): q^(1/T) normalised equals h when 9^(1/T) = 3, T = 2
    assert H.fit_temperature(np.tile([.9, .1], (4, 1)), np.tile([.75, .25], (4, 1))) == pytest.approx(2, rel=1e-4)


def test_entropy_correlation_is_pearson():
    x = np.array([[0.1, 0.4, 0.2, 0.9]])
    y = np.array([0.0, 0.5, 0.1, 0.7])
    xc, yc = x[0] - x[0].mean(), y - y.mean()
    want = (xc @ yc) / math.sqrt((xc @ xc) * (yc @ yc))
    assert H.pearson_rows(x, y[None])[0] == pytest.approx(want)
    r, lo, hi = H.correlation_ci(x, y, B=200)
    assert r == pytest.approx(want) and lo <= hi
    assert np.isnan(H.pearson_rows(np.ones((1, 4)), y[None])[0])     # a constant model: no correlation


def test_mean_ci_covers_the_mean_and_uses_seeds():
    v = np.array([[0., 1., 0., 1.], [1., 1., 1., 1.]])   # seed 1 mean .5, seed 2 mean 1
    m, lo, hi = H.mean_ci(v, B=2000, seed=1)
    assert m == pytest.approx(.75) and lo < m < hi
    # constant values: a zero-width interval
    assert H.mean_ci(np.full((1, 5), 2.0), B=100)[1:] == pytest.approx((2.0, 2.0))


def test_paired_difference_is_exact_for_a_constant_shift():
    a = np.array([.3, .5, .9, .2])
    v, lo, hi = H.paired_difference(a + .1, a, B=500)
    assert (v, lo, hi) == pytest.approx((.1, .1, .1))


def test_model_metrics_by_agreement_level():
    human = H.human_distribution(np.array([[5, 0, 0], [4, 1, 0], [0, 3, 2], [0, 2, 3]]))
    levels = H.agreement_level(np.array([[5, 0, 0], [4, 1, 0], [0, 3, 2], [0, 2, 3]]))
    labels = np.array([0, 0, 1, 2])
    probs = np.array([[.8, .1, .1], [.1, .8, .1], [.1, .8, .1], [.1, .8, .1]])    # right on rows 0, 2
    out = H.model_metrics(probs, human, labels, levels, B=200)
    assert out["accuracy"][0] == pytest.approx(50)
    assert out["accuracy 5/5"][0] == pytest.approx(100)
    assert out["accuracy 4/5"][0] == pytest.approx(0)
    assert out["accuracy 3/5"][0] == pytest.approx(50)
    want_kl = np.mean([math.log(1 / .8), .8 * math.log(.8 / .1) + .2 * math.log(.2 / .8),
                       .6 * math.log(.6 / .8) + .4 * math.log(.4 / .1),
                       .4 * math.log(.4 / .8) + .6 * math.log(.6 / .1)])
    assert out["kl"][0] == pytest.approx(want_kl)
