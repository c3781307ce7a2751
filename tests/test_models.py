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
        Model.from_sklearn(LinearRegression().fit(X, np.stack([Y_REG, Y_REG], axis=1)))
    from sklearn.svm import LinearSVC

    with pytest.raises(ValueError, match="classifier without predict_proba"):
        Model.from_sklearn(LinearSVC().fit(X, Y_CLASS))
    with pytest.raises(TypeError, match="not a fitted"):
        Model.from_sklearn(object())
    with pytest.raises(ValueError, match="outputs must be the next layer's inputs"):
        parse_architecture("6-8-relu,4-1-logistic")


# -- pipelines, multi-class, trees; the bound is tight (within 10x of the worst error on 10,000 inputs) ----

def _pipelines():  # type: ignore[no-untyped-def]
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    raw = X * 10 + 3  # features in their own units: the scalers matter
    y3 = np.digitize(X[:, 0] + 0.5 * X[:, 3], [-0.5, 0.5])
    return {
        "standard+logistic": (make_pipeline(StandardScaler(), LogisticRegression()).fit(raw, Y_CLASS), 10, 3),
        "minmax+mlp": (make_pipeline(MinMaxScaler(), MLPClassifier((8,), max_iter=400, random_state=0))
                       .fit(raw, Y_CLASS), 10, 3),
        "robust+linear": (make_pipeline(RobustScaler(), LinearRegression()).fit(raw, Y_REG), 10, 3),
        "standard+minmax+mlp-32-16": (make_pipeline(StandardScaler(), MinMaxScaler(),
                                                    MLPClassifier((32, 16), max_iter=300, random_state=0))
                                      .fit(raw, Y_CLASS), 10, 3),
        "logistic-3-classes": (LogisticRegression().fit(X, y3), 1, 0),
        "mlp-3-classes": (MLPClassifier((8,), max_iter=400, random_state=0).fit(X, y3), 1, 0),
        "decision-tree": (DecisionTreeClassifier(max_depth=5, random_state=0).fit(X, Y_CLASS), 1, 0),
        "random-forest": (RandomForestClassifier(10, max_depth=4, random_state=0).fit(X, Y_CLASS), 1, 0),
        "gradient-boosting": (GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)
                              .fit(X, Y_CLASS), 1, 0),
        "gradient-boosting-3-classes": (GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0)
                                        .fit(X, y3), 1, 0),
        "hist-gradient-boosting": (HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0)
                                   .fit(X, Y_CLASS), 1, 0),
    }


PIPELINES = list(_pipelines())


@pytest.mark.parametrize("name", PIPELINES)
def test_models_score_like_sklearn_within_a_tight_bound(make_topology, name: str) -> None:
    """Secure scores of 10,000 random inputs equal sklearn's predict_proba (predict) within error_bound,
    and the bound is within 10x of the worst error measured (not a bound that says nothing)."""
    sk, spread, centre = _pipelines()[name]
    model = Model.from_sklearn(sk)
    x = np.random.default_rng(11).uniform(-3, 3, (10_000, X.shape[1])) * spread + centre
    if hasattr(model, "near_threshold"):  # a tree's comparison within 2^-f of a threshold may flip (documented)
        x = x[~model.near_threshold(x, 16)]
    want = sk.predict_proba(x) if hasattr(sk, "predict_proba") else sk.predict(x)
    if want.ndim == 2 and want.shape[1] == 2:
        want = want[:, 1]
    np.testing.assert_allclose(model.predict(x), want, atol=1e-9)

    async def program(ctx: Context):
        shared = await ctx.input("bank_a", x if ctx.name == "bank_a" else None)
        return await ctx.reveal(model.score(ctx, shared))

    got = run_local(make_topology(2), program, transport="memory")["bank_b"].value
    worst = float(np.max(np.abs(got - want)))
    bound = model.error_bound(np.max(np.abs(x), axis=0), 16)
    assert worst <= bound <= 10 * worst, (name, worst, bound)


def test_tree_models_compare_every_node_in_one_batch(make_topology) -> None:
    """All nodes of all trees in one comparison: the rounds do not grow with the number of trees."""
    from sklearn.ensemble import RandomForestClassifier

    rounds = {}
    for n_trees in (2, 12):
        model = Model.from_sklearn(RandomForestClassifier(n_trees, max_depth=3, random_state=0).fit(X, Y_CLASS))

        async def program(ctx: Context, model=model):  # type: ignore[no-untyped-def]
            x = await ctx.input("bank_a", TEST if ctx.name == "bank_a" else None)
            return await ctx.reveal(model.score(ctx, x))

        rounds[n_trees] = run_local(make_topology(2), program, transport="memory")["bank_a"].stats.rounds
    assert rounds[2] == rounds[12]


def test_tree_models_round_trip_a_file(tmp_path: Path) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    model = Model.from_sklearn(GradientBoostingClassifier(n_estimators=5, max_depth=2).fit(X, Y_CLASS))
    model.save(tmp_path / "gb.npz")
    np.testing.assert_array_equal(Model.load(tmp_path / "gb.npz").predict(TEST), model.predict(TEST))


def test_unsupported_pipeline_steps_are_named() -> None:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    with pytest.raises(ValueError, match=r"pipeline step 'pca' \(PCA\) is not supported"):
        Model.from_sklearn(make_pipeline(PCA(2), LogisticRegression()).fit(X, Y_CLASS))


def test_a_model_trained_on_shares_is_a_shared_model(make_topology, tmp_path: Path) -> None:
    """train() gives the model type of any model on shares: score, save/load (each party its own share),
    and reveal by policy to a public Model that predicts what the secure scores say."""
    from protocols.applications import training as tr
    from protocols.applications.models import SharedModel

    cfg = tr.TrainConfig(hidden=(4,), learning_rate=0.3, epochs=1, batch_size=64, seed=1)
    path = str(tmp_path / "share_{party}.npz")

    async def program(ctx: Context):
        x = await ctx.input("bank_a", X if ctx.name == "bank_a" else None)
        y = await ctx.input("bank_b", Y_CLASS if ctx.name == "bank_b" else None, shape=Y_CLASS.shape, fixed=False)
        trained = tr.train(ctx, x, y, cfg)
        assert isinstance(trained.model, SharedModel)
        scores = await ctx.reveal(trained.score(ctx, x[:50]))
        await trained.save(ctx, path)
        loaded = SharedModel.load(ctx, None if ctx.is_dealer else path, trained.model.architecture)
        again = await ctx.reveal(loaded.score(ctx, x[:50]))
        public = await trained.reveal(ctx, to=["bank_a"])
        return scores, again, public

    out = run_local(make_topology(2), program, transport="memory")
    scores, again, public = out["bank_a"].value
    assert out["bank_b"].value[2] is None and out["helper"].value[2] is None  # revealed to bank_a only
    np.testing.assert_allclose(scores, again, atol=4 * 2.0**-16)  # the same weights, fresh truncation draws
    ulps = 4 * 2.0**-16  # each of the hard sigmoid's two ReLUs truncates by its own draw
    assert public.architecture == "6-4-relu,4-1-hard_sigmoid" and np.all((scores >= -ulps) & (scores <= 1 + ulps))
    assert np.max(np.abs(public.predict(X[:50]) - scores)) <= public.error_bound(np.max(np.abs(X), axis=0), 16)
    assert (tmp_path / "share_bank_a.npz").exists() and not (tmp_path / "share_helper.npz").exists()
