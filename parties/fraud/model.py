"""The scoring model: a small ReLU multilayer perceptron, stored as plain numpy arrays (model.npz).

Trained in plaintext on synthetic data (scripts/train_fraud_model.py, needs scikit-learn: the `train`
extra); running it needs only numpy. The file holds three models: `joint` (both banks' features),
and `bank_a` / `bank_b` (one bank's features alone, the baselines the demo compares against).
A model's score is the logit before the sigmoid; an account is flagged when score > threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).resolve().parent / "model.npz"
CLIP = 8.0  # standardised features are clipped to +-8: bounded fixed-point values


@dataclass
class MLP:
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    threshold: float

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return np.clip((features - self.mean) / self.std, -CLIP, CLIP)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Plaintext reference: the logit of every row of raw features."""
        return self.logits(self.standardise(features))

    def logits(self, standardised: np.ndarray) -> np.ndarray:
        h = standardised
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0)
        return h[:, 0]

    def flags(self, features: np.ndarray) -> np.ndarray:
        return (self.scores(features) > self.threshold).astype(np.int64)

    def score_error_bound(self, standardised: np.ndarray, frac_bits: int) -> np.ndarray:
        """Per row, a bound on |secure score - plaintext score| from fixed point: every input, weight
        and bias rounded to 2^-(f+1), every truncation off by at most 2^-f; ReLU is 1-Lipschitz."""
        half, lsb = 2.0 ** -(frac_bits + 1), 2.0**-frac_bits
        err = np.full(len(standardised), half)  # the inputs' rounding
        h = np.abs(standardised)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            w_abs = np.abs(w)
            # |(h + e)(W + d) - hW| <= e |W| + |h| d + e d, summed over the inner dimension
            err = (err[:, None] * w_abs.sum(axis=0)[None, :] + (h.sum(axis=1) * half)[:, None]
                   + err[:, None] * half * w.shape[0] + half + lsb).max(axis=1)
            h = np.abs(h @ w + b) if i == len(self.weights) - 1 else np.maximum(h @ w_abs + np.abs(b), 0)
        return err


def load(path: str | Path = MODEL_FILE) -> dict[str, MLP]:
    """The models in a model file, by name: joint, bank_a, bank_b."""
    with np.load(path) as z:
        names = sorted({k.split("/")[0] for k in z.files})
        models = {}
        for name in names:
            layers = sorted({int(k.split("/W")[1]) for k in z.files if k.startswith(f"{name}/W")})
            models[name] = MLP([z[f"{name}/W{i}"] for i in layers], [z[f"{name}/b{i}"] for i in layers],
                               z[f"{name}/mean"], z[f"{name}/std"], float(z[f"{name}/threshold"]))
    return models


def save(models: dict[str, MLP], path: str | Path = MODEL_FILE) -> None:
    arrays = {}
    for name, m in models.items():
        for i, (w, b) in enumerate(zip(m.weights, m.biases, strict=True)):
            arrays[f"{name}/W{i}"], arrays[f"{name}/b{i}"] = w, b
        arrays[f"{name}/mean"], arrays[f"{name}/std"] = m.mean, m.std
        arrays[f"{name}/threshold"] = np.array(m.threshold)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy\'s stub reads **kwds as allow_pickle
