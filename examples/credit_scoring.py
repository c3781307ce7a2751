"""Private credit scoring: a lender's model scores applicants whose features two banks hold.

bank_a holds each applicant's salary-account features, bank_b their credit-card features (the same
applicants, in the same order: a public list); the lender (bank_c) owns a logistic regression fitted
with scikit-learn (examples/train_credit_model.py) and inputs its weights: neither bank sees the model,
the lender sees no feature, and only the approvals (score >= threshold) are opened, to both banks.
The model's architecture ('6-1-logistic') is public, as every party must run the same protocols.

    mpc launch configs/local-3banks-helper.yaml --program examples/credit_scoring.py:credit_scoring \\
        -p data_dir=examples/data
"""

from pathlib import Path

import numpy as np

from protocols.applications.models import Model, share_model


async def credit_scoring(ctx, data_dir: Path = Path("examples/data"), threshold: float = 0.5,
                         architecture: str = "6-1-logistic"):
    """Approvals of every applicant, from both banks' features and the lender's secret model."""
    def features(bank: str) -> np.ndarray | None:
        if ctx.name != bank:
            return None
        return np.loadtxt(data_dir / f"credit_{bank}.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))

    salary = await ctx.input("bank_a", features("bank_a"))
    card = await ctx.input("bank_b", features("bank_b"))
    lender = Model.load(data_dir / "credit_model.npz") if ctx.name == "bank_c" else None
    model = share_model(ctx, "bank_c", architecture, lender)
    scores = model.score(ctx, ctx.concatenate([salary, card], axis=1))
    approved = await ctx.reveal(scores >= threshold, to=["bank_a", "bank_b"])
    return None if approved is None else {"approved": int(approved.sum()), "of": len(approved),
                                          "decisions": approved.tolist()}


credit_scoring.own_params = ("data_dir",)
