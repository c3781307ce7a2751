"""Bring your model: fitted scikit-learn models as secure scoring functions on shared features.

`Model.from_sklearn(fitted)` takes a `LogisticRegression` (binary), `LinearRegression` or
`MLPClassifier` (binary; ReLU, logistic, tanh or identity hidden layers) and keeps only its layers:
weights, biases and activations (scikit-learn is not imported here: the attributes `coef_`,
`intercept_`, `coefs_`, `intercepts_`, `activation` are read). Then either

- `model.score(ctx, x)`: the weights are public (every party has the model), 0 rounds per layer for the
  products (public x shared), one ReLU gate per hidden ReLU layer (the truncation fused into it), or
- `share_model(ctx, owner, architecture, model)`: a model owner party inputs the weights (every other
  party passes None; the architecture, layer shapes and activations, is public and agreed like any
  program parameter), and `shared.score(ctx, x)` takes a Beaver round per layer instead of a local
  product. Neither bank then sees the weights.

Scores are what scikit-learn's `predict_proba(X)[:, 1]` (classifiers) or `predict(X)` (regression) give,
within the fixed-point error stated by `error_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.interface.context import Context
from protocols.primitives.shared import SharedArray

ACTIVATIONS = ("identity", "relu", "logistic", "tanh")


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
    def from_sklearn(fitted: Any) -> Model:
        """A fitted LogisticRegression, LinearRegression or MLPClassifier (binary classifiers only)."""
        kind = type(fitted).__name__
        if hasattr(fitted, "coefs_"):  # MLPClassifier / MLPRegressor
            hidden = getattr(fitted, "activation", "relu")
            if hidden not in ACTIVATIONS:
                raise ValueError(f"{kind}: hidden activation {hidden!r} is not supported ({', '.join(ACTIVATIONS)})")
            out = getattr(fitted, "out_activation_", "identity")
            if out not in ("logistic", "identity"):
                raise ValueError(f"{kind}: output {out!r} is not supported (binary classifiers and regressors only)")
            n = len(fitted.coefs_)
            return Model(tuple(Layer(np.asarray(w, float), np.asarray(b, float), hidden if i < n - 1 else out)
                               for i, (w, b) in enumerate(zip(fitted.coefs_, fitted.intercepts_, strict=True))))
        if hasattr(fitted, "coef_"):
            if hasattr(fitted, "classes_") and not hasattr(fitted, "predict_proba"):
                raise ValueError(f"{kind} is a classifier without predict_proba (its scores are a decision "
                                 "function, not probabilities): use LogisticRegression")
            coef = np.atleast_2d(np.asarray(fitted.coef_, float))
            if coef.shape[0] != 1:
                raise ValueError(f"{kind}: only a single output (binary classification, one target) is supported")
            intercept = np.atleast_1d(np.asarray(fitted.intercept_, float))
            output = "logistic" if hasattr(fitted, "predict_proba") else "identity"
            return Model((Layer(coef.T, intercept, output),))
        raise TypeError(f"{kind} is not a fitted LogisticRegression, LinearRegression or MLPClassifier")

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
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle

    @staticmethod
    def load(path: Any) -> Model:
        with np.load(path, allow_pickle=False) as f:
            layers = parse_architecture(str(f["architecture"]))
            return Model(tuple(Layer(f[f"w{i}"], f[f"b{i}"], act) for i, (_, _, act) in enumerate(layers)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The same model in float64 numpy (the plaintext reference)."""
        h = np.asarray(x, float)
        for layer in self.layers:
            h = _activate(h @ layer.weight + layer.bias, layer.activation)
        return h[..., 0] if h.shape[-1] == 1 else h

    def error_bound(self, x_max: float, frac_bits: int) -> float:
        """A bound on |secure score - predict(x)| for features with |x| <= x_max: the inputs' rounding
        (2^-(f+1)) and each product's truncation (2^-f, times the fan-in for the weights' rounding)
        carried through each layer by its weights' row norm, plus 1e-3 per sigmoid or tanh."""
        step = 2.0**-frac_bits
        err, scale = step / 2, x_max
        for layer in self.layers:
            w = np.abs(layer.weight)
            fan_in = layer.weight.shape[0]
            err = float(np.max(w.sum(axis=0))) * err + (scale + 1) * fan_in * step / 2 + 2 * step
            scale = float(np.max(w.sum(axis=0))) * scale + float(np.max(np.abs(layer.bias)))
            if layer.activation in ("logistic", "tanh"):
                err = min(err, 1.0) + 1e-3
                scale = 1.0
        return err

    def score(self, ctx: Context, x: SharedArray) -> SharedArray:
        """Scores of shared features x (rows are samples) with public weights."""
        return _forward(ctx, x, [(layer.weight, layer.bias, layer.activation) for layer in self.layers])


@dataclass(frozen=True)
class SharedModel:
    """A model whose weights are secret-shared (input by a model owner)."""

    layers: tuple[tuple[SharedArray, SharedArray, str], ...]

    def score(self, ctx: Context, x: SharedArray) -> SharedArray:
        return _forward(ctx, x, list(self.layers))


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
        h = ctx.truncate(z, z.frac_bits - ctx.frac_bits) + bias if z.frac_bits > ctx.frac_bits else z + bias
        if activation == "logistic":
            h = ctx.sigmoid(h)
        elif activation == "tanh":
            h = ctx.tanh(h)
    return h[..., 0] if h.shape[-1] == 1 else h


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "logistic":
        return 1 / (1 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    return z


__all__ = ["Layer", "Model", "SharedModel", "parse_architecture", "share_model"]
