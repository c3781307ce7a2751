"""Bring your model: fitted scikit-learn models as secure scoring functions on shared features.

`Model.from_sklearn(fitted)` takes a `LogisticRegression` (binary or multi-class), `LinearRegression` or
`MLPClassifier` (binary or multi-class; ReLU, logistic, tanh or identity hidden layers), alone or as the
last step of a `Pipeline` of scalers (`StandardScaler`, `MinMaxScaler`, `RobustScaler`, folded into the
first layer's weights, so the scaling costs nothing). It keeps only the layers: weights, biases and
activations (scikit-learn is not imported here; the fitted attributes are read). Tree models
(`DecisionTreeClassifier`, `RandomForestClassifier`, `GradientBoostingClassifier`,
`HistGradientBoostingClassifier`) give a `TreeEnsemble`
(protocols/applications/trees.py) with the same interface. Then either

- `model.score(ctx, x)`: the weights are public (every party has the model), 0 rounds per layer for the
  products (public x shared), one ReLU gate per hidden ReLU layer (the truncation fused into it), or
- `share_model(ctx, owner, architecture, model)`: a model owner party inputs the weights (every other
  party passes None; the architecture, layer shapes and activations, is public and agreed like any
  program parameter), and `shared.score(ctx, x)` takes a Beaver round per layer instead of a local
  product. Neither bank then sees the weights. A model trained on shares (training.train) is the same
  `SharedModel`: `score`, `save` (each party its own share), `SharedModel.load`, and `reveal` (to whom
  the policy says) giving a public `Model`.

Scores are what scikit-learn's `predict_proba(X)[:, 1]` (binary classifiers), `predict_proba(X)` (multi-
class: the softmax of the logits, probabilities per class) or `predict(X)` (regression) give, within the
fixed-point error stated by `error_bound(x_max, frac_bits)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.interface.context import Context
from protocols.primitives import comparison
from protocols.primitives.shared import SharedArray, concatenate, resolved

if TYPE_CHECKING:
    from protocols.applications.trees import TreeEnsemble

ACTIVATIONS = ("identity", "relu", "logistic", "tanh", "softmax", "hard_sigmoid")
# Each secure function's absolute error beyond its input's (protocols/interface/functions.py, training.py)
FUNCTION_ERROR = {"logistic": 7.5e-4, "tanh": 3.7e-4, "softmax": 2e-4, "hard_sigmoid": 0.0}
# How far an error of the input can move the output, at most (the largest slope; softmax: per entry,
# the largest row sum of |J| = 2 p (1 - p))
LIPSCHITZ = {"identity": 1.0, "relu": 1.0, "logistic": 0.25, "tanh": 1.0, "softmax": 0.5, "hard_sigmoid": 0.25}


@dataclass(frozen=True)
class Layer:
    weight: np.ndarray  # (inputs, outputs)
    bias: np.ndarray  # (outputs,)
    activation: str  # after this layer: identity | relu | logistic | tanh


@dataclass(frozen=True)
class Model:
    """A feed-forward model's layers; the last layer's activation is the output's (logistic for a
    classifier's probability, identity for a regression)."""

    layers: tuple[Layer, ...]

    @staticmethod
    def from_sklearn(fitted: Any) -> Model | TreeEnsemble:
        """A fitted LogisticRegression, LinearRegression or MLPClassifier, or a Pipeline of scalers ending in
        one (a Model); a tree model or ensemble (a trees.TreeEnsemble). TypeError/ValueError say what is
        not supported."""
        scale, shift, fitted = unwrap_pipeline(fitted)
        kind = type(fitted).__name__
        from protocols.applications import trees

        if trees.is_tree_model(fitted):
            return trees.TreeEnsemble.from_sklearn(fitted, scale, shift)
        if hasattr(fitted, "coefs_"):  # MLPClassifier / MLPRegressor
            hidden = getattr(fitted, "activation", "relu")
            if hidden not in ACTIVATIONS[:4]:
                raise ValueError(f"{kind}: hidden activation {hidden!r} is not supported "
                                 f"({', '.join(ACTIVATIONS[:4])})")
            out = getattr(fitted, "out_activation_", "identity")
            if out not in ("logistic", "identity", "softmax"):
                raise ValueError(f"{kind}: output {out!r} is not supported")
            n = len(fitted.coefs_)
            layers = [Layer(np.asarray(w, float), np.asarray(b, float), hidden if i < n - 1 else out)
                      for i, (w, b) in enumerate(zip(fitted.coefs_, fitted.intercepts_, strict=True))]
            return Model(_fold_scaler(layers, scale, shift))
        if hasattr(fitted, "coef_"):
            if hasattr(fitted, "classes_") and not hasattr(fitted, "predict_proba"):
                raise ValueError(f"{kind} is a classifier without predict_proba (its scores are a decision "
                                 "function, not probabilities): use LogisticRegression")
            coef = np.atleast_2d(np.asarray(fitted.coef_, float))
            intercept = np.atleast_1d(np.asarray(fitted.intercept_, float))
            if hasattr(fitted, "predict_proba"):
                multi = coef.shape[0] > 1
                if multi and getattr(fitted, "multi_class", "auto") == "ovr":
                    raise ValueError(f"{kind}: one-vs-rest multi-class is not supported (use the default, "
                                     "multinomial)")
                output = "softmax" if multi else "logistic"
            else:
                if coef.shape[0] != 1:
                    raise ValueError(f"{kind}: only a single output (one target) is supported")
                output = "identity"
            return Model(_fold_scaler([Layer(coef.T, intercept, output)], scale, shift))
        raise TypeError(f"{kind} is not a fitted LogisticRegression, LinearRegression, MLPClassifier or tree "
                        "model (or a Pipeline of scalers ending in one)")

    @property
    def n_features(self) -> int:
        return int(self.layers[0].weight.shape[0])

    @property
    def architecture(self) -> str:
        """The public part: 'INPUTS-OUTPUTS-ACTIVATION' per layer, e.g. '8-16-relu,16-1-logistic'."""
        return ",".join(f"{w.shape[0]}-{w.shape[1]}-{a}" for w, a in ((la.weight, la.activation) for la in self.layers))

    def save(self, path: Any) -> None:
        """Write the layers to an .npz file (arrays and the architecture string; no pickle)."""
        arrays = {f"w{i}": la.weight for i, la in enumerate(self.layers)}
        arrays.update({f"b{i}": la.bias for i, la in enumerate(self.layers)})
        arrays["architecture"] = np.array(self.architecture)
        arrays["kind"] = np.array("layers")
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle

    @staticmethod
    def load(path: Any) -> Model | TreeEnsemble:
        """A model written by `save`: a Model, or a trees.TreeEnsemble."""
        with np.load(path, allow_pickle=False) as f:
            if "kind" in f.files and str(f["kind"]) == "trees":
                from protocols.applications.trees import TreeEnsemble

                return TreeEnsemble.from_arrays({k: f[k] for k in f.files})
            layers = parse_architecture(str(f["architecture"]))
            return Model(tuple(Layer(f[f"w{i}"], f[f"b{i}"], act) for i, (_, _, act) in enumerate(layers)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The same model in float64 numpy (the plaintext reference)."""
        h = np.asarray(x, float)
        for layer in self.layers:
            h = _activate(h @ layer.weight + layer.bias, layer.activation)
        return h[..., 0] if h.shape[-1] == 1 else h

    def error_bound(self, x_max: float | np.ndarray, frac_bits: int) -> float:
        """A bound on |secure score - predict(x)| for features with |x_i| <= x_max (a number, or one per
        feature), per unit and layer: the error a unit's input carries, times its weights; the weights'
        own rounding (exactly as encoded) times the input's size; the bias's rounding and one truncation
        step; then each activation's slope and its approximation's error (FUNCTION_ERROR)."""
        step = 2.0**-frac_bits
        size = np.broadcast_to(np.abs(np.asarray(x_max, float)), (self.n_features,)).astype(float)  # |h_i| <=
        err = np.full(self.n_features, step / 2)  # |h_i error| <=, the inputs' rounding
        for layer in self.layers:
            w = layer.weight
            rounding = np.abs(np.round(w * 2**frac_bits) / 2**frac_bits - w)
            bias_rounding = np.abs(np.round(layer.bias * 2**frac_bits) / 2**frac_bits - layer.bias)
            z_err = err @ np.abs(w) + (size + err) @ rounding + bias_rounding + 2 * step
            z_size = (size + err) @ np.abs(w) + np.abs(layer.bias)
            act = layer.activation
            if act == "softmax":  # every output depends on every logit
                err = np.full_like(z_err, LIPSCHITZ[act] * float(np.max(z_err)) + FUNCTION_ERROR[act] + step)
            else:
                err = LIPSCHITZ[act] * z_err + FUNCTION_ERROR.get(act, 0.0) + (step if act != "identity" else 0)
            size = np.minimum(z_size, 1.0) if act in ("logistic", "tanh", "softmax", "hard_sigmoid") else z_size
        return float(np.max(err))

    def score(self, ctx: Context, x: SharedArray) -> SharedArray:
        """Scores of shared features x (rows are samples) with public weights."""
        return _forward(ctx, x, [(layer.weight, layer.bias, layer.activation) for layer in self.layers])


@dataclass(frozen=True)
class SharedModel:
    """A model whose weights are secret-shared: input by a model owner (share_model), trained on shares
    (training.train(...).model), or loaded from each party's own share file (SharedModel.load). The
    architecture is public; the weights stay shared until a policy reveals them."""

    layers: tuple[tuple[SharedArray, SharedArray, str], ...]

    @property
    def architecture(self) -> str:
        return ",".join(f"{w.shape[0]}-{w.shape[1]}-{a}" for w, _, a in self.layers)

    def score(self, ctx: Context, x: SharedArray) -> SharedArray:
        """Scores of shared features x (rows are samples): a Beaver product per layer."""
        return _forward(ctx, x, list(self.layers))

    async def reveal(self, ctx: Context, to: Sequence[str] | None = None) -> Model | None:
        """Open the weights to the parties `to` (default: every compute party), a policy choice: a public
        Model for them, None for the others."""
        tasks = [(ctx.reveal(w, to=to), ctx.reveal(b, to=to), a) for w, b, a in self.layers]
        opened = [(await tw, await tb, a) for tw, tb, a in tasks]
        if opened[0][0] is None:
            return None
        return Model(tuple(Layer(np.asarray(w, float), np.asarray(b, float), a) for w, b, a in opened))

    async def save(self, ctx: Context, path: str | Path) -> Path | None:
        """Write this party's own share of the weights to `path` (.npz, no pickle; `{party}` in the path is
        replaced by the party's name). One share alone is uniformly random. The helper writes nothing."""
        shares = [((await w.resolve()).share, (await b.resolve()).share) for w, b, _ in self.layers]
        if ctx.is_dealer:
            return None
        out = Path(str(path).replace("{party}", ctx.name))
        arrays = {f"w{i}": w for i, (w, _) in enumerate(shares)}
        arrays.update({f"b{i}": b for i, (_, b) in enumerate(shares)})
        meta = {"format": 1, "party": ctx.name, "architecture": self.architecture, "frac_bits": ctx.frac_bits,
                "frac": [[int(w.frac_bits), int(b.frac_bits)] for w, b, _ in self.layers]}
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(out, **arrays)  # type: ignore[arg-type]
        return out

    @staticmethod
    def load(ctx: Context, path: str | Path | None, architecture: str) -> SharedModel:
        """The model from each compute party's own share file written by `save` (`{party}` in the path is
        replaced by the party's name; the helper passes None). The architecture is agreed, public."""
        spec = parse_architecture(architecture)
        arrays: dict[str, np.ndarray] = {}
        frac = [[ctx.frac_bits, ctx.frac_bits] for _ in spec]
        if not ctx.is_dealer:
            if path is None:
                raise ValueError(f"{ctx.name}: SharedModel.load needs this party's share file")
            where = str(path).replace("{party}", ctx.name)
            with np.load(where, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
            if meta["party"] != ctx.name or meta["architecture"] != architecture or meta["frac_bits"] != ctx.frac_bits:
                raise ValueError(f"{where}: {meta['party']}'s share of a {meta['architecture']} model at "
                                 f"{meta['frac_bits']} fractional bits, not {ctx.name}'s of {architecture} at "
                                 f"{ctx.frac_bits}")
            frac = meta["frac"]
        layers = []
        for i, (n_in, n_out, act) in enumerate(spec):
            zeros_w, zeros_b = np.zeros((n_in, n_out), np.uint64), np.zeros(n_out, np.uint64)
            w = resolved(ctx, (n_in, n_out), frac[i][0], arrays.get(f"w{i}", zeros_w))
            b = resolved(ctx, (n_out,), frac[i][1], arrays.get(f"b{i}", zeros_b))
            layers.append((w, b, act))
        return SharedModel(tuple(layers))


def unwrap_pipeline(fitted: Any) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
    """(scale, shift, estimator) of a Pipeline of scalers ending in an estimator: the scalers composed into
    one per-feature affine map x -> x * scale + shift (None, None for a bare estimator)."""
    steps = getattr(fitted, "steps", None)
    if steps is None:
        return None, None, fitted
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None
    for name, step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        kind = type(step).__name__
        n = int(step.n_features_in_)
        a, c = np.ones(n), np.zeros(n)  # this step: x -> x * a + c
        if kind == "StandardScaler":
            if step.scale_ is not None:
                a = 1.0 / np.asarray(step.scale_, float)
            if step.mean_ is not None and step.with_mean:
                c = -np.asarray(step.mean_, float) * a
        elif kind == "MinMaxScaler":
            if getattr(step, "clip", False):
                raise ValueError(f"pipeline step {name!r}: MinMaxScaler(clip=True) is not supported")
            a, c = np.asarray(step.scale_, float), np.asarray(step.min_, float)
        elif kind == "RobustScaler":
            if step.scale_ is not None:
                a = 1.0 / np.asarray(step.scale_, float)
            if step.center_ is not None:
                c = -np.asarray(step.center_, float) * a
        else:
            raise ValueError(f"pipeline step {name!r} ({kind}) is not supported: only StandardScaler, "
                             "MinMaxScaler and RobustScaler before the model")
        scale = a if scale is None else scale * a
        shift = c if shift is None else shift * a + c
    return scale, shift, steps[-1][1]


def _fold_scaler(layers: list[Layer], scale: np.ndarray | None, shift: np.ndarray | None) -> tuple[Layer, ...]:
    """The first layer of `layers` applied to x * scale + shift, as one layer on x (exact in float)."""
    if scale is None or shift is None:
        return tuple(layers)
    first = layers[0]
    weight = scale[:, None] * first.weight
    bias = first.bias + shift @ first.weight
    return (Layer(weight, bias, first.activation), *layers[1:])


def parse_architecture(text: str) -> tuple[tuple[int, int, str], ...]:
    """'8-16-relu,16-1-logistic' -> ((8, 16, 'relu'), (16, 1, 'logistic')); ValueError if malformed."""
    layers = []
    for part in text.split(","):
        fields = part.strip().split("-")
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit() or fields[2] not in ACTIVATIONS:
            raise ValueError(f"architecture {text!r}: each layer is INPUTS-OUTPUTS-ACTIVATION, activation one of "
                             f"{', '.join(ACTIVATIONS)}")
        layers.append((int(fields[0]), int(fields[1]), fields[2]))
    for (_, n_out, _), (n_in, _, _) in zip(layers, layers[1:], strict=False):
        if n_out != n_in:
            raise ValueError(f"architecture {text!r}: a layer's outputs must be the next layer's inputs")
    return tuple(layers)


def share_model(ctx: Context, owner: str, architecture: str, model: Model | None = None) -> SharedModel:
    """The owner inputs its model's weights; every other party passes None. The architecture (layer
    shapes and activations, e.g. `model.architecture` = '8-16-relu,16-1-logistic') is public: every
    party, the helper included, needs it to run the protocols; the weights stay secret. 1 round, with
    the first use of the weights."""
    layers = parse_architecture(architecture)
    if ctx.name == owner:
        if model is None:
            raise ValueError(f"{owner}: share_model needs the model on its owner")
        if model.architecture != architecture:
            raise ValueError(f"{owner}: the model is {model.architecture}, not the agreed {architecture}")
    out = []
    for i, (n_in, n_out, activation) in enumerate(layers):
        mine = model.layers[i] if model is not None and ctx.name == owner else None
        w = ctx.input(owner, mine.weight if mine else None, shape=(n_in, n_out), fixed=True)
        b = ctx.input(owner, mine.bias if mine else None, shape=(n_out,), fixed=True)
        out.append((w, b, activation))
    return SharedModel(tuple(out))


def _forward(ctx: Context, x: SharedArray, layers: list[tuple[Any, Any, str]]) -> SharedArray:
    h = x
    for weight, bias, activation in layers:
        z = ctx.matmul(h, weight, truncate=False)  # at up to 2f fractional bits
        if activation == "relu":
            h = ctx.relu(z + bias)  # the bias added at z's scale; the truncation fused into the ReLU gate
            continue
        if activation == "hard_sigmoid":  # the sigmoid training uses, its truncation fused in (one gate)
            h = hard_sigmoid_shared(ctx, z + bias)
            continue
        h = ctx.truncate(z, z.frac_bits - ctx.frac_bits) + bias if z.frac_bits > ctx.frac_bits else z + bias
        if activation == "logistic":
            h = ctx.sigmoid(h)
        elif activation == "tanh":
            h = ctx.tanh(h)
        elif activation == "softmax":
            h = ctx.softmax(h, axis=-1)
    return h[..., 0] if h.shape[-1] == 1 else h


def hard_sigmoid_shared(ctx: Context, z: SharedArray) -> SharedArray:
    """SecureML's hard sigmoid clip(z/4 + 1/2, 0, 1) at f bits, for z at f or 2f bits: relu(u) - relu(u - 1),
    u = z/4 + 1/2, both in one ReLU-truncation gate (u is z read with 2 more fractional bits: the division
    by 4 is free). Training uses it (1 round where the spline sigmoid takes 2), and so does scoring with a
    model trained on shares."""
    f = ctx.frac_bits
    u = z.local(lambda s: s, z.shape, frac=z.frac_bits + 2) + 0.5
    both = comparison.relu_truncate(ctx, concatenate([u, u - 1.0]), u.frac_bits - f)
    n = z.shape[0]
    return both[:n] - both[n:]


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "logistic":
        return 1 / (1 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    if activation == "hard_sigmoid":
        return np.clip(z / 4 + 0.5, 0.0, 1.0)
    if activation == "softmax":
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return z


__all__ = ["Layer", "Model", "SharedModel", "parse_architecture", "share_model", "unwrap_pipeline"]
