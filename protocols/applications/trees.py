"""Tree models scored on shared features: decision trees, random forests and gradient-boosted ensembles.

The shape of every tree (which feature each node tests, its children) is public, and so are the
thresholds and the leaf values: the model's owner publishes the model, the features stay shared. The
secure evaluation never follows a path (that would show it); it weighs every leaf:

1. every internal node of every tree compares its feature with its threshold, all in ONE batch of
   comparisons, [x_feature > threshold] (sklearn goes left when x <= threshold): one comparison round;
2. each node's indicator, 1 exactly on the leaf the sample reaches, is found level by level: a right
   child's is its parent's times the node's bit, a left child's the parent's minus that; one Beaver
   product per level for every tree at once (depth rounds, integers, no truncation);
3. the score is the sum of leaf indicators times leaf values (public: local), then the ensemble's link:
   the mean of trees' class probabilities (DecisionTree, RandomForest), or the boosted sum and its
   sigmoid (binary) or softmax (multi-class), as scikit-learn's `predict_proba`.

Error: the features are compared at the fixed-point resolution 2^-f, so an input within 2^-f of a
threshold may take the other branch (`error_bound` holds for inputs farther than that from every
threshold, as the random inputs of the tests are); otherwise the leaf values' rounding and, for boosted
ensembles, the sigmoid's or softmax's approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.interface.context import Context
from protocols.primitives.shared import SharedArray, constant

LINKS = ("mean", "logistic", "softmax", "identity")  # how the trees' summed leaves become the score
FUNCTION_ERROR = {"mean": 0.0, "identity": 0.0, "logistic": 7.5e-4, "softmax": 2e-4}
SLOPE = {"mean": 1.0, "identity": 1.0, "logistic": 0.25, "softmax": 0.5}


@dataclass(frozen=True)
class Tree:
    """One tree in arrays: for node i, `left[i]`/`right[i]` (-1 at a leaf), `feature[i]`, `threshold[i]`
    (x <= threshold goes left) and `value[i]` (a leaf's K outputs)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray  # (nodes, K)

    def depths(self) -> np.ndarray:
        depth = np.zeros(len(self.left), dtype=np.int64)
        level = np.array([0])
        while len(level):  # breadth first from the root (node 0)
            level = level[self.left[level] >= 0]
            children = np.concatenate([self.left[level], self.right[level]])
            depth[children] = np.concatenate([depth[level], depth[level]]) + 1
            level = children
        return depth

    def predict(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return self.value[node]
            go_right = x[rows, np.maximum(self.feature[node], 0)] > self.threshold[node]
            node = np.where(inner, np.where(go_right, self.right[node], self.left[node]), node)


@dataclass(frozen=True)
class TreeEnsemble:
    """Trees whose leaves are summed times `weight` (1/trees for a forest's mean), plus `base`, then `link`
    (LINKS); `binary`: a classifier of two classes scored as the probability of the second (as
    predict_proba(X)[:, 1])."""

    trees: tuple[Tree, ...]
    n_features: int
    base: np.ndarray  # (K,)
    weight: float
    link: str
    binary: bool

    @staticmethod
    def from_sklearn(fitted: Any, scale: np.ndarray | None = None, shift: np.ndarray | None = None) -> TreeEnsemble:
        """A fitted tree model; `scale`/`shift`: a Pipeline's scalers (x -> x * scale + shift) folded into
        the thresholds."""
        ensemble = _read(fitted)
        if scale is None or shift is None:
            return ensemble
        if np.any(scale <= 0):
            raise ValueError("a scaler with a non-positive scale before a tree model is not supported")
        trees = []
        for t in ensemble.trees:  # x * a + c <= thr  <=>  x <= (thr - c) / a  (a > 0)
            f = np.maximum(t.feature, 0)
            thr = np.where(t.left >= 0, (t.threshold - shift[f]) / scale[f], t.threshold)
            trees.append(Tree(t.left, t.right, t.feature, thr, t.value))
        return TreeEnsemble(tuple(trees), ensemble.n_features, ensemble.base, ensemble.weight, ensemble.link,
                            ensemble.binary)

    @property
    def depth(self) -> int:
        return max(int(t.depths().max()) for t in self.trees)

    @property
    def n_nodes(self) -> int:
        return sum(int((t.left >= 0).sum()) for t in self.trees)

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.base + self.weight * sum(t.predict(np.asarray(x, float)) for t in self.trees)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The same model in float64 numpy: scikit-learn's predict_proba (or predict for a regressor)."""
        z = self.raw(x)
        if self.link == "logistic":
            z = 1 / (1 + np.exp(-z))
        elif self.link == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            z = e / e.sum(axis=1, keepdims=True)
        if self.link == "logistic" and z.shape[1] == 1:
            return z[:, 0]
        if self.binary:
            return z[:, 1]
        return z[:, 0] if z.shape[1] == 1 else z

    def near_threshold(self, x: np.ndarray, frac_bits: int = 16) -> np.ndarray:
        """Rows of x within 2^-f of some node's threshold on that node's feature: there the fixed-point
        comparison may take the other branch than float64 does (error_bound does not cover them)."""
        x = np.asarray(x, float)
        near = np.zeros(len(x), dtype=bool)
        for t in self.trees:
            inner = t.left >= 0
            near |= np.any(np.abs(x[:, t.feature[inner]] - t.threshold[inner]) <= 2.0**-frac_bits, axis=1)
        return near

    def error_bound(self, x_max: float | np.ndarray = 0.0, frac_bits: int = 16) -> float:
        """|secure score - predict(x)| for inputs farther than 2^-f from every threshold (see the module
        doc): each leaf value's rounding (2^-(f+1)) summed over the trees, times the weight, through the
        link's slope, plus the link's approximation error. x_max does not matter (comparisons are exact)."""
        step = 2.0**-frac_bits
        leaves = len(self.trees) * step / 2 + step  # the values are encoded already times the weight
        return SLOPE[self.link] * leaves + FUNCTION_ERROR[self.link] + step

    def score(self, ctx: Context, x: SharedArray) -> SharedArray:
        """Scores of shared features x (n, d), every node's comparison in one batch (module doc)."""
        n = x.shape[0]
        offsets = np.cumsum([0] + [len(t.left) for t in self.trees])
        left = np.concatenate([np.where(t.left >= 0, t.left + o, -1)
                               for t, o in zip(self.trees, offsets, strict=False)])
        right = np.concatenate([np.where(t.right >= 0, t.right + o, -1)
                                for t, o in zip(self.trees, offsets, strict=False)])
        feature = np.concatenate([t.feature for t in self.trees])
        threshold = np.concatenate([t.threshold for t in self.trees])
        values = np.concatenate([t.value for t in self.trees]) * self.weight
        depth = np.concatenate([t.depths() for t in self.trees])
        inner = np.flatnonzero(left >= 0)
        bit_col = np.full(len(left), -1)
        bit_col[inner] = np.arange(len(inner))
        k = values.shape[1]
        total: SharedArray | None = None
        if len(inner):  # 1. every node's comparison at once: [x_f > t] = [t < x_f]
            bits = ctx.less(threshold[inner][None, :], x[:, feature[inner]])
        level = np.flatnonzero(depth == 0)  # the roots
        ind = constant(ctx, np.ones((n, len(level)), dtype=np.int64))
        while len(level):
            col = {int(node): j for j, node in enumerate(level)}
            leaves = [int(v) for v in level if left[v] < 0]
            if leaves:  # 3. this level's leaves: indicator x value (public, local)
                part = ctx.matmul(ind[:, [col[v] for v in leaves]], values[leaves], truncate=False)
                total = part if total is None else total + part
            parents = [int(v) for v in level if left[v] >= 0]
            if not parents:
                break
            p = ind[:, [col[v] for v in parents]]  # 2. one product for this level of every tree
            go_right = ctx.mul(p, bits[:, bit_col[parents]])
            ind = ctx.concatenate([go_right, p - go_right], axis=1)
            level = np.concatenate([right[parents], left[parents]])
        assert total is not None
        z = total + self.base if self.link != "mean" else total
        if self.link == "logistic":
            z = ctx.sigmoid(z)
        elif self.link == "softmax":
            z = ctx.softmax(z, axis=-1)
        if self.binary:
            return z[:, 1]
        return z[:, 0] if k == 1 else z

    # -- files -----------------------------------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Write the trees to an .npz file (arrays only, no pickle); models.Model.load reads it back."""
        arrays: dict[str, np.ndarray] = {"kind": np.array("trees"), "base": self.base,
                                         "meta": np.array([self.n_features, len(self.trees), int(self.binary)]),
                                         "weight": np.array(self.weight), "link": np.array(self.link)}
        for i, t in enumerate(self.trees):
            for name in ("left", "right", "feature", "threshold", "value"):
                arrays[f"t{i}_{name}"] = getattr(t, name)
        np.savez(path, **arrays)  # type: ignore[arg-type]

    @staticmethod
    def from_arrays(f: dict[str, np.ndarray]) -> TreeEnsemble:
        n_features, n_trees, binary = (int(v) for v in f["meta"])
        trees = tuple(Tree(*(f[f"t{i}_{name}"] for name in ("left", "right", "feature", "threshold", "value")))
                      for i in range(n_trees))
        return TreeEnsemble(trees, n_features, f["base"], float(f["weight"]), str(f["link"]), bool(binary))


# -- reading fitted models ------------------------------------------------------------------------------

# XGBoost and LightGBM boosters are not read yet (neither package is a dependency, nor installed in CI).
TREE_KINDS = ("DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier", "RandomForestRegressor",
              "ExtraTreesClassifier", "GradientBoostingClassifier", "HistGradientBoostingClassifier")


def is_tree_model(fitted: Any) -> bool:
    return type(fitted).__name__ in TREE_KINDS


def _sk_tree(tree: Any, normalise: bool) -> Tree:
    """A fitted sklearn Tree (estimator.tree_): its leaves' values, as class probabilities if asked."""
    value = np.asarray(tree.value, float)[:, 0, :]  # (nodes, K)
    if normalise:
        value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
    return Tree(np.asarray(tree.children_left, np.int64), np.asarray(tree.children_right, np.int64),
                np.asarray(tree.feature, np.int64), np.asarray(tree.threshold, float), value)


def _read(fitted: Any) -> TreeEnsemble:
    kind = type(fitted).__name__
    d = int(fitted.n_features_in_)
    classes = len(getattr(fitted, "classes_", [])) or 1
    if kind in ("DecisionTreeClassifier", "DecisionTreeRegressor"):
        t = _sk_tree(fitted.tree_, normalise=kind.endswith("Classifier"))
        return TreeEnsemble((t,), d, np.zeros(t.value.shape[1]), 1.0, "mean", classes == 2)
    if kind in ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier"):
        trees = tuple(_sk_tree(e.tree_, normalise=kind.endswith("Classifier")) for e in fitted.estimators_)
        return TreeEnsemble(trees, d, np.zeros(trees[0].value.shape[1]), 1.0 / len(trees), "mean", classes == 2)
    if kind == "GradientBoostingClassifier":
        return _gradient_boosting(fitted, d, classes)
    if kind == "HistGradientBoostingClassifier":
        return _hist_gradient_boosting(fitted, d, classes)
    raise TypeError(f"{kind}: reading this tree model is not supported here")


def _gradient_boosting(fitted: Any, d: int, classes: int) -> TreeEnsemble:
    init = fitted.init_
    if init != "zero" and type(init).__name__ != "DummyClassifier":
        raise ValueError("GradientBoostingClassifier: only the default init (or 'zero') is supported")
    k = 1 if classes == 2 else classes
    base = np.zeros(k)
    if init != "zero":  # the log-odds (binary) or log-priors (multi-class) of the training classes
        prior = np.asarray(init.class_prior_, float)
        base = np.log(prior[1:2] / prior[0:1]) if classes == 2 else np.log(prior)
    trees = []
    for stage in fitted.estimators_:  # (stages, K) regression trees on the raw score of each class
        for c in range(k):
            t = _sk_tree(stage[c].tree_, normalise=False)
            value = np.zeros((len(t.left), k))
            value[:, c] = t.value[:, 0]
            trees.append(Tree(t.left, t.right, t.feature, t.threshold, value))
    return TreeEnsemble(tuple(trees), d, base, float(fitted.learning_rate), "logistic" if k == 1 else "softmax", False)


def _hist_gradient_boosting(fitted: Any, d: int, classes: int) -> TreeEnsemble:
    if getattr(fitted, "is_categorical_", None) is not None and np.any(fitted.is_categorical_):
        raise ValueError("HistGradientBoostingClassifier: categorical features are not supported")
    k = 1 if classes == 2 else classes
    trees = []
    for stage in fitted._predictors:  # (iterations, K) TreePredictor; learning rate already in the values
        for c in range(k):
            nodes = stage[c].nodes
            leaf = nodes["is_leaf"].astype(bool)
            value = np.zeros((len(nodes), k))
            value[:, c] = nodes["value"]
            trees.append(Tree(np.where(leaf, -1, nodes["left"].astype(np.int64)),
                              np.where(leaf, -1, nodes["right"].astype(np.int64)),
                              nodes["feature_idx"].astype(np.int64), nodes["num_threshold"].astype(float), value))
    base = np.asarray(fitted._baseline_prediction, float).reshape(-1)[:k]
    return TreeEnsemble(tuple(trees), d, base, 1.0, "logistic" if k == 1 else "softmax", False)


__all__ = ["TREE_KINDS", "Tree", "TreeEnsemble", "is_tree_model"]
