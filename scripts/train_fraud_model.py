#!/usr/bin/env python
"""Train the fraud demo's models in plaintext on synthetic data and write parties/fraud/model.npz.

Needs scikit-learn (`pip install -e '.[train]'`); running the demo does not. Three ReLU MLPs: the joint
model on both banks' features, and one per bank on its features alone (the baselines). The threshold on
the logit is the one with the best F1 on a separate validation set.

Usage: python scripts/train_fraud_model.py [--accounts 60000] [--hidden 16,8] [--out parties/fraud/model.npz]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parties.fraud import data, features  # noqa: E402
from parties.fraud.model import MLP, MODEL_FILE, save  # noqa: E402

TRAIN_SEED, VALID_SEED = 1001, 1002  # the demo's default data use other seeds


def feature_matrix(ds: data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    return features.compute(ds.bank_a, ds.accounts), features.compute(ds.bank_b, ds.accounts)


def fit(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, hidden: tuple[int, ...]) -> MLP:
    from sklearn.neural_network import MLPClassifier

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = MLP([], [], mean, std, 0.0)
    clf = MLPClassifier(hidden_layer_sizes=hidden, activation="relu", alpha=1e-3, max_iter=800,
                        early_stopping=True, random_state=0)
    clf.fit(model.standardise(x), y)
    model.weights = [w.astype(np.float64) for w in clf.coefs_]
    model.biases = [b.astype(np.float64) for b in clf.intercepts_]
    scores = model.scores(x_val)
    best = max(np.quantile(scores, np.linspace(0.5, 0.999, 400)),
               key=lambda t: _f1(scores > t, y_val))
    model.threshold = float(best)
    return model


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = float((pred & (y == 1)).sum())
    return 2 * tp / max(1.0, float(pred.sum() + (y == 1).sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=60000)
    ap.add_argument("--hidden", default="16,8")
    ap.add_argument("--out", default=str(MODEL_FILE))
    args = ap.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    train, valid = data.generate(args.accounts, TRAIN_SEED), data.generate(args.accounts // 2, VALID_SEED)
    (ta, tb), (va, vb) = feature_matrix(train), feature_matrix(valid)
    models = {
        "joint": fit(np.hstack([ta, tb]), train.labels, np.hstack([va, vb]), valid.labels, hidden),
        "bank_a": fit(ta, train.labels, va, valid.labels, hidden),
        "bank_b": fit(tb, train.labels, vb, valid.labels, hidden),
    }
    for name, m in models.items():
        x = np.hstack([va, vb]) if name == "joint" else (va if name == "bank_a" else vb)
        pred = m.flags(x).astype(bool)
        tp = int((pred & (valid.labels == 1)).sum())
        print(f"{name:7s} validation: precision {tp / max(1, pred.sum()):.3f} recall "
              f"{tp / max(1, valid.labels.sum()):.3f} threshold {m.threshold:.3f}")
    save(models, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
