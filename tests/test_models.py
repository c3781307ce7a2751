"""Fitted scikit-learn models score on shared features within their stated fixed-point bound."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier

from protocols.applications.models import Model, parse_architecture, share_model
from protocols.interface.context import Context, run_local

RNG = np.random.default_rng(3)
X = RNG.normal(0, 1, (300, 6))
Y_CLASS = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] - X[:, 3] > 0).astype(int)
Y_REG = X @ np.array([1.5, -2.0, 0.3, 0.0, 4.0, -1.0]) + 3.0
TEST = np.concatenate([RNG.normal(0, 1, (40, 6)), np.zeros((1, 6)), np.full((1, 6), 3.0)])


@functools.cache
def fitted(kind: str):  # type: ignore[no-untyped-def]
    """Fitted once per test run; convergence does not matter here (secure scores are compared with the same
    fitted model's own)."""
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if kind == "linear":
        return LinearRegression().fit(X, Y_REG)
    if kind == "logistic":
        return LogisticRegression().fit(X, Y_CLASS)
    activation = kind.split("-")[1]
    return MLPClassifier((8, 4), activation=activation, max_iter=600, random_state=0).fit(X, Y_CLASS)


def sklearn_scores(model, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return model.predict_proba(x)[:, 1] if hasattr(model, "predict_proba") else model.predict(x)


@pytest.mark.parametrize("kind", ["linear", "logistic", "mlp-relu", "mlp-logistic"])
def test_public_model_scores_like_sklearn(make_topology, kind: str) -> None:
    sk = fitted(kind)
    model = Model.from_sklearn(sk)
    np.testing.assert_allclose(model.predict(TEST), sklearn_scores(sk, TEST), atol=1e-9)

    async def program(ctx: Context):
        x = await ctx.input("bank_a", TEST if ctx.name == "bank_a" else None)
        return await ctx.reveal(model.score(ctx, x))

    got = run_local(make_topology(2), program, transport="memory")["bank_b"].value
    bound = model.error_bound(3.0, 16)
    assert np.max(np.abs(got - sklearn_scores(sk, TEST))) <= bound, (np.max(np.abs(got - sklearn_scores(sk, TEST))),
                                                                     bound)


@pytest.mark.parametrize("kind", ["logistic", "mlp-relu"])
def test_model_owner_inputs_the_weights_neither_bank_sees(make_topology, kind: str) -> None:
    """Three compute parties: the banks hold features (split by columns), bank_c owns the model."""
    sk = fitted(kind)
    model = Model.from_sklearn(sk)
    arch = model.architecture

    async def program(ctx: Context):
        left = await ctx.input("bank_a", TEST[:, :3] if ctx.name == "bank_a" else None)
        right = await ctx.input("bank_b", TEST[:, 3:] if ctx.name == "bank_b" else None)
        shared = share_model(ctx, "bank_c", arch, model if ctx.name == "bank_c" else None)
        scores = shared.score(ctx, ctx.concatenate([left, right], axis=1))
        return await ctx.reveal(scores, to=["bank_a", "bank_b"])

    out = run_local(make_topology(3), program)
    assert out["bank_c"].value is None and out["helper"].value is None
    assert np.max(np.abs(out["bank_a"].value - sklearn_scores(sk, TEST))) <= model.error_bound(3.0, 16)


def test_models_round_trip_a_file_and_refuse_what_they_cannot_run(tmp_path: Path) -> None:
    model = Model.from_sklearn(fitted("mlp-relu"))
    model.save(tmp_path / "m.npz")
    again = Model.load(tmp_path / "m.npz")
    assert again.architecture == model.architecture == "6-8-relu,8-4-relu,4-1-logistic"
    np.testing.assert_array_equal(again.predict(TEST), model.predict(TEST))
    with pytest.raises(ValueError, match="single output"):
        Model.from_sklearn(LogisticRegression().fit(X, RNG.integers(0, 3, len(X))))
    from sklearn.svm import LinearSVC

    with pytest.raises(ValueError, match="classifier without predict_proba"):
        Model.from_sklearn(LinearSVC().fit(X, Y_CLASS))
    with pytest.raises(TypeError, match="not a fitted"):
        Model.from_sklearn(object())
    with pytest.raises(ValueError, match="outputs must be the next layer's inputs"):
        parse_architecture("6-8-relu,4-1-logistic")
