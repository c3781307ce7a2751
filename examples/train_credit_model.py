"""Fit the credit-scoring example's model with scikit-learn and write its synthetic data.

A lender (the model owner) trained a logistic regression on its own history; two banks each hold some
features of the same loan applicants. Run once to regenerate `examples/data/credit_*` (needs the `train`
extra): `python examples/train_credit_model.py`.
"""

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from protocols.applications.models import Model

OUT = Path(__file__).parent / "data"
FEATURES_A = ["income_k", "years_employed", "savings_k"]  # bank_a: the applicant's salary account
FEATURES_B = ["card_utilisation", "missed_payments", "open_loans"]  # bank_b: the applicant's credit card


def applicants(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    income = rng.lognormal(3.6, 0.4, n)
    years = rng.gamma(2.0, 3.0, n)
    savings = rng.lognormal(2.0, 1.0, n)
    utilisation = rng.beta(2, 5, n)
    missed = rng.poisson(0.6, n).astype(float)
    loans = rng.poisson(1.2, n).astype(float)
    x = np.column_stack([income, years, savings, utilisation, missed, loans])
    logit = (0.03 * (income - 40) + 0.15 * (years - 6) + 0.02 * savings - 3.0 * utilisation - 1.1 * missed
             - 0.3 * loans + 1.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def main() -> None:
    rng = np.random.default_rng(2026)
    history, repaid = applicants(4000, rng)
    mean, std = history.mean(axis=0), history.std(axis=0)
    fitted = LogisticRegression().fit((history - mean) / std, repaid)
    model = Model.from_sklearn(fitted)
    # the lender's scaler folded into the first layer: the banks input raw features
    w = model.layers[0].weight / std[:, None]
    b = model.layers[0].bias - (mean / std) @ model.layers[0].weight
    Model((type(model.layers[0])(w, b, "logistic"),)).save(OUT / "credit_model.npz")
    new, _ = applicants(60, rng)
    for bank, cols in (("bank_a", slice(0, 3)), ("bank_b", slice(3, 6))):
        names = FEATURES_A if bank == "bank_a" else FEATURES_B
        header = "applicant," + ",".join(names)
        rows = [f"p{i:03d}," + ",".join(f"{v:.4f}" for v in row) for i, row in enumerate(new[:, cols])]
        (OUT / f"credit_{bank}.csv").write_text(header + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
