"""The secure fraud-scoring program every party runs, through the public API only.

Each bank computes its per-account features locally, standardises them with the public model's scaler
and inputs them; the parties evaluate the joint model (public weights) on the shared features and open
only the flags. Per layer: a local product with the public weights kept at 2f fractional bits, then one
fused ReLU-and-truncation gate; the output score stays at 2f bits and is compared with the threshold.
Online rounds with the dcf method: input 1, each hidden layer 1, comparison 1, opening 1 (5 for the
shipped two-layer model), whatever the number of accounts.
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from mpc.memory import party_memory
from parties.fraud import data, features
from parties.fraud.model import MLP, MODEL_FILE, load
from protocols import Context, SharedArray
from protocols.applications import training
from protocols.interface.collectives import shards

N_FEATURES = len(features.FEATURES)
log = logging.getLogger(__name__)  # `progress: STAGE` lines: the demo's harness shows them


def score(ctx: Context, x_a: SharedArray, x_b: SharedArray, model: MLP) -> tuple[SharedArray, SharedArray]:
    """(scores at 2f fractional bits, flags) for standardised shared features of both banks."""
    w0 = model.weights[0]
    h = ctx.matmul(x_a, w0[:N_FEATURES], truncate=False) + ctx.matmul(x_b, w0[N_FEATURES:], truncate=False) \
        + model.biases[0]
    for w, b in zip(model.weights[1:], model.biases[1:], strict=True):
        h = ctx.matmul(ctx.relu(h), w, truncate=False) + b  # relu truncates 2f -> f in the same gate
    scores = h[:, 0]
    return scores, ctx.less(float(model.threshold), scores)


def standardised_part(model: MLP, raw: np.ndarray, part: int) -> np.ndarray:
    """A bank's own columns of the joint model's scaler applied to its own features."""
    cols = slice(part * N_FEATURES, (part + 1) * N_FEATURES)
    return np.clip((raw - model.mean[cols]) / model.std[cols], -8.0, 8.0)


async def fraud(ctx: Context, data_dir: str, reveal_scores: bool = False, flags_to: str = "both",
                query: str = "", model_file: str = "", audit: bool = False, model_shares: str = "",
                model_architecture: str = "") -> dict[str, Any]:
    """Score every listed account (or one, `query`) jointly; reveal flags (and scores if asked).

    `model_architecture` (agreed by every party, the helper included) and each bank's own `model_shares`
    file: score with a model the banks trained on shares in an earlier session (parties/fraud/train.py),
    its weights shared, each bank's features standardised with its own scaler from its file. The banks
    first check that their files' digests agree.

    `audit`: each bank also returns its own share of the scores (random by itself) for an auditor who
    holds everything anyway, as the demo's harness does with synthetic data, to check the score error
    without opening the scores to the banks."""
    if flags_to not in ("both", "own"):
        raise ValueError("flags_to must be 'both' or 'own'")
    bank_names = ctx.compute_parties[:2]
    if len(ctx.compute_parties) != 2:
        raise ValueError("the fraud demo runs with exactly two compute parties (the banks) and the helper")
    model = load(model_file or MODEL_FILE)["joint"]
    directory = Path(data_dir)
    accounts = data.read_accounts(directory / "accounts.csv")
    if query:
        if query not in set(accounts.tolist()):
            raise ValueError(f"--query: account {query!r} is not in {directory / 'accounts.csv'}")
        accounts = np.array([query])
    n = len(accounts)
    group = shards(ctx)  # a sharded party (docs/sharding.md): this shard scores accounts lo..hi
    lo, hi = group.rows(n)
    me = ctx.name
    own = None
    present = None
    shares = None
    if model_architecture and me in bank_names:
        if not model_shares:
            raise ValueError(f"{me}: model_architecture is set but not model_shares, this bank's own share file")
        shares = training.read_shares(model_shares.replace("{party}", me), me, model_architecture, ctx.frac_bits)
    if me in bank_names:
        log.info("progress: features (%d accounts)", n)
        part = bank_names.index(me)
        blocks = features.compute_file(directory / f"{('bank_a', 'bank_b')[part]}.csv", accounts[lo:hi])  # streamed
        raw = np.vstack([block for _, _, block in blocks])
        own = standardised_part(model, raw, part) if shares is None else \
            np.clip((raw - shares.extra["mean"]) / shares.extra["std"], -8.0, 8.0)
        present = raw[:, 0].astype(np.int64)
    layers = await training.load_shared_weights(ctx, model_architecture, shares, {me: model_shares}) \
        if model_architecture else None

    if me in bank_names:  # the helper deals from the start; the banks reach this point after their features
        log.info("progress: dealing")
    t_deal = time.time()
    ctx.hold()  # deal everything first, then run the online phase alone (and measure it)
    rows = hi - lo
    x_a = ctx.input(bank_names[0], own if me == bank_names[0] else None, shape=(rows, N_FEATURES), fixed=True)
    x_b = ctx.input(bank_names[1], own if me == bank_names[1] else None, shape=(rows, N_FEATURES), fixed=True)
    if layers is None:
        scores, flags = score(ctx, x_a, x_b, model)
    else:  # shared weights times shared features; p > 1/2 exactly when the logit is > 0 (either sigmoid)
        joint = ctx.concatenate([cast(SharedArray, x_a), cast(SharedArray, x_b)], axis=1)  # declared: arrays
        scores = training.logits(ctx, layers, joint)
        flags = ctx.less(0.0, scores)
    if flags_to == "both":
        opened = [ctx.reveal(flags)]
    else:  # each bank learns flags of its own customers only: flag * present, opened to that bank
        mine = [ctx.input(b, present if me == b else None, shape=(rows,), fixed=False) for b in bank_names]
        opened = [ctx.reveal(ctx.mul(flags, mine[i]), to=[b]) for i, b in enumerate(bank_names)]
    opened_scores = ctx.reveal(scores) if reveal_scores else None
    await ctx.release()
    deal_s = time.time() - t_deal
    log.info("progress: online")
    t_start = time.time()
    flag_values = [await o for o in opened]
    score_values = await opened_scores if opened_scores is not None else None
    t_end = time.time()
    # a sharded party: its shards' flags (and scores) in shard order, i.e. in account order
    flag_values = [await group.concat_own(f) for f in flag_values]
    score_values = await group.concat_own(score_values) if reveal_scores else None
    stats = ctx.party.stats
    traffic = await group.sum_own(np.array([stats.total(phase="online").bytes_sent,
                                            stats.total(phase="offline").bytes_sent]))
    assert traffic is not None
    out: dict[str, Any] = {
        "accounts": n, "online_started": _iso(t_start), "online_ended": _iso(t_end), "online_s": t_end - t_start,
        "deal_s": deal_s, "rounds": stats.rounds,
        "bytes_online": int(traffic[0]), "bytes_offline": int(traffic[1]),
        "comparison_method": ",".join(stats.methods_used()) or None, "workers": group.count,
        **party_memory(ctx.party),
    }
    if ctx.is_dealer:
        out["learned"] = (f"the number of accounts ({n}) and the model's shape; no transactions, features, "
                          "scores or flags")
        return out
    mine_flags = next(f for f in flag_values if f is not None)
    out["flags"] = mine_flags.astype(np.int8).tolist()
    out["flagged_accounts"] = accounts[mine_flags.astype(bool)].tolist()
    if score_values is not None:
        out["scores"] = score_values.tolist()
    if audit:
        share = await group.concat_own(await ctx.own_share(scores))
        assert share is not None
        out["score_share"] = {"frac_bits": scores.frac_bits, "share": share.tolist()}
    other = bank_names[1 - bank_names.index(me)]
    learned = [f"its own transactions and features, the public account list and model ({n} accounts)",
               f"the flags of {'all listed accounts' if flags_to == 'both' else 'its own customers'}"]
    if score_values is not None:
        learned.append("the scores (--reveal-scores)")
    if layers is not None:
        learned[0] = (f"its own transactions and features, the public account list ({n} accounts) and model "
                      "architecture; its own share of the model (random by itself)")
    out["learned"] = "; ".join(learned) + f"; nothing of {other}'s data"
    return out


fraud.shardable = True  # type: ignore[attr-defined]


def _iso(epoch: float) -> str:
    """A wall-clock time as ISO 8601 in UTC, to the microsecond (results are read by people and files)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="microseconds")
