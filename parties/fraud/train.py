"""The banks train the fraud model together on secret shares, keep it shared, and score with it.

Program `fraud-train`, run by every party (`mpc demo fraud` by default, or `mpc run --program fraud-train`):

1. The public account list is split into training and scored accounts by a public seeded permutation.
2. Each bank computes its own features (parties/fraud/features.py), standardises them with its own
   statistics over the training accounts, and inputs them: vertically partitioned data, the joint rows
   are the two banks' columns side by side. An account a bank does not hold enters as zeros.
3. Each bank inputs the labels it knows: 1 for the confirmed mules among its own customers (its labels
   file). An account's training label is the OR of both banks' labels, a + b - ab, on shares (1 round).
   One bit is opened: whether there is any positive label at all (training without one is refused).
4. protocols/applications/training.py trains the model on shares; the weights stay shared. Each epoch opens one
   count to both banks: how many weights left the fixed-point range (0 unless training diverges).
5. The scored accounts' logits are computed with the shared weights and only the flags are opened.
   Each bank writes its own share of the weights (and its own scaler) to its own file (`model_out`); the
   helper writes nothing. `reveal_model` opens the weights to both banks (a policy choice).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mpc.memory import party_memory
from parties.fraud import data, features
from protocols import Context, SharedArray
from protocols.applications import training
from protocols.interface.collectives import Shards, shards

N_FEATURES = len(features.FEATURES)
MODELS = {"mlp": (16, 8), "logistic": ()}
log = logging.getLogger(__name__)  # `progress: STAGE` lines, shown by the demo's harness


def split(n: int, seed: int, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, scored rows): a public seeded split of the account list."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, not {train_fraction}")
    perm = np.random.default_rng([seed, 3]).permutation(n)
    k = int(round(n * train_fraction))
    return np.sort(perm[:k]), np.sort(perm[k:])


def standardise(raw: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bank's own columns standardised with its own statistics over `rows`, clipped to +-8."""
    mean = raw[rows].mean(axis=0) if len(rows) else np.zeros(raw.shape[1])
    std = raw[rows].std(axis=0) if len(rows) else np.ones(raw.shape[1])
    std = np.where(std > 0, std, 1.0)
    return apply_scaler(raw, mean, std), mean, std


def apply_scaler(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.clip((raw - mean) / std, -8.0, 8.0)


# -- each bank's known positives ----------------------------------------------------------------------

def bank_labels(truth: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic: each mule is confirmed by bank_a, by bank_b, or by both (a third each), so neither bank
    alone knows every mule and the OR of their labels does."""
    who = np.random.default_rng([seed, 4]).integers(0, 3, len(truth))
    mule = truth == 1
    return (mule & (who != 1)).astype(np.int64), (mule & (who != 0)).astype(np.int64)


def write_bank_labels(directory: Path, accounts: np.ndarray, labels: dict[str, np.ndarray]) -> None:
    for bank, known in labels.items():
        rows = "".join(f"{a},1\n" for a in accounts[known == 1])
        (directory / f"labels_{bank}.csv").write_text("account_id,is_mule\n" + rows)


def read_bank_labels(path: str | Path, accounts: np.ndarray) -> np.ndarray:
    """0/1 per listed account from a bank's labels file (`account_id,is_mule`; unlisted accounts: 0).
    DataError for a value that is not 0 or 1, a contradiction, or ids that are not in the account list."""
    table = data._read_table(Path(path), ["account_id", "is_mule"])
    ids, values = table.columns["account_id"], table.columns["is_mule"]
    invalid = np.flatnonzero((values != "0") & (values != "1"))
    if len(invalid):
        raise table.bad("is_mule", int(invalid[0]), "is not 0 or 1")
    at, listed = features.AccountIndex(accounts).positions(ids)
    if not listed.all():
        unknown = ids[~listed]
        raise data.DataError(f"{path}: {len(unknown):,} labelled account(s) are not in the account list, e.g. "
                             + ", ".join(repr(str(a)) for a in unknown[:3]))
    out = np.zeros(len(accounts), dtype=np.int64)
    flag = (values == "1").astype(np.int64)
    order = np.lexsort((flag, at))  # by account: a contradiction is a change of label within one account
    same = at[order][1:] == at[order][:-1]
    clash = np.flatnonzero(same & (flag[order][1:] != flag[order][:-1]))
    if len(clash):
        rows = order[clash[0]:clash[0] + 2]
        later = int(rows.max())
        raise table.bad("is_mule", later, f"contradicts the earlier label of account {str(ids[later])!r}")
    out[at] = flag
    return out


# -- the secure program -----------------------------------------------------------------------------

async def fraud_train(ctx: Context, data_dir: str, labels_file: str = "", model: str = "mlp", epochs: int = 5,
                      learning_rate: float = 0.3, batch_size: int = 128, class_weight: float = 3.0, seed: int = 7,
                      train_fraction: float = 0.5, threshold: float = 0.5, reveal_model: bool = False,
                      model_out: str = "", audit: bool = False, checkpoint_dir: str = "",
                      resume: bool = False) -> dict[str, Any]:
    """Train the joint model on shares, score the other accounts with it, open only the flags.

    `checkpoint_dir`: each bank writes its share of the weights there at every epoch's end; with `resume`
    (every party agrees on it) training continues after the last epoch both banks' files hold."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    banks = ctx.compute_parties
    if len(banks) != 2:
        raise ValueError("the fraud demo runs with exactly two compute parties (the banks) and the helper")
    cfg = training.TrainConfig(hidden=MODELS[model], learning_rate=learning_rate, epochs=epochs,
                               batch_size=batch_size, seed=seed, class_weight=class_weight)
    accounts = data.read_accounts(Path(data_dir) / "accounts.csv")
    n = len(accounts)
    train_rows, score_rows = split(n, seed, train_fraction)
    cfg.validate(len(train_rows))
    # A sharded party (docs/sharding.md): this shard holds accounts lo..hi and trains data-parallel on the
    # training rows among them; with one worker it holds them all.
    group = shards(ctx)
    lo, hi = group.rows(n)
    my_train, my_score = (rows[(rows >= lo) & (rows < hi)] for rows in (train_rows, score_rows))
    me = ctx.name
    labels = mean = std = None
    if group.count == 1:
        # Unsharded: each bank's features standardised on disk and shared a block of accounts at a time (the
        # block bounds are public, as the number of accounts is): never whole in its memory in plaintext.
        with tempfile.TemporaryDirectory(prefix="mpc-fraud-features-") as tmp:
            own: np.ndarray | None = None
            if me in banks:
                log.info("progress: features (%d accounts)", n)
                own, mean, std = _standardised_features(
                    Path(data_dir) / f"{('bank_a', 'bank_b')[banks.index(me)]}.csv", accounts, train_rows, Path(tmp))
                path = Path(labels_file or Path(data_dir) / f"labels_{me}.csv")
                labels = read_bank_labels(path, accounts)[train_rows]
            parts: list[list[SharedArray]] = [[], []]
            for b_lo in range(0, n, INPUT_ROWS):
                b_hi = min(n, b_lo + INPUT_ROWS)
                for i, b in enumerate(banks):
                    value = np.array(own[b_lo:b_hi]) if me == b and own is not None else None
                    parts[i].append(_declared(ctx.input(b, value, shape=(b_hi - b_lo, N_FEATURES), fixed=True)))
                for part in parts:
                    await part[-1]  # shared before the next block is read
            del own
        xs = [ctx.concatenate(part, axis=0) if len(part) > 1 else part[0] for part in parts]
        if me in banks:
            log.info("progress: dealing")
    else:
        # A shard: its own accounts' features (a fraction of the bank's), the scaler from the shards' sums.
        shard_own: np.ndarray | None = None
        if me in banks:
            log.info("progress: features (%d accounts)", hi - lo)
            blocks = features.compute_file(Path(data_dir) / f"{('bank_a', 'bank_b')[banks.index(me)]}.csv",
                                           accounts[lo:hi])
            raw = np.vstack([block for _, _, block in blocks])
            mean, std = await _scaler(group, raw[my_train - lo], len(train_rows))
            shard_own = apply_scaler(raw, mean, std)
            path = Path(labels_file or Path(data_dir) / f"labels_{me}.csv")
            labels = read_bank_labels(path, accounts)[my_train]
            log.info("progress: dealing")
        else:
            await _scaler(group, None, len(train_rows))  # the helper's shards take part in the collectives
        xs = [_declared(ctx.input(b, shard_own if me == b else None, shape=(hi - lo, N_FEATURES), fixed=True))
              for b in banks]

    ctx.hold()  # phase 1, training: deal what the window holds, then run it online (and measure it)
    t_deal = time.time()
    ls = [_declared(ctx.input(b, labels if me == b else None, shape=(len(my_train),), fixed=False)) for b in banks]
    x = ctx.concatenate(xs, axis=1)  # the joint rows: both banks' columns side by side (local)
    y = ls[0] | ls[1]  # the OR of both banks' labels, a + b - ab: 1 round
    any_positive = ctx.reveal(ctx.less(0, group.sum(y.sum())))
    checkpoints = training.Checkpoints(Path(checkpoint_dir.replace("{party}", me))) if checkpoint_dir else None
    if resume and checkpoints is None:
        raise ValueError("resume needs checkpoint_dir, where the stopped training wrote its checkpoints")
    start = await training.resume_point(ctx, checkpoints, cfg, 2 * N_FEATURES) if resume and checkpoints else None
    if start is not None and start.epochs_done:
        log.info("progress: resuming after epoch %d/%d", start.epochs_done, cfg.epochs)
    result = training.train(ctx, x[my_train - lo], y, cfg, total_rows=len(train_rows),
                            first_row=int(np.searchsorted(train_rows, lo)), checkpoints=checkpoints, resume=start)
    await ctx.release()
    deal_train_s = time.time() - t_deal
    log.info("progress: training")
    t_train = time.time()
    rounds_before = ctx.party.stats.rounds
    if not await _any_positive(any_positive, len(train_rows)):
        raise training.TrainingError(f"no positive label at all among the {len(train_rows):,} training accounts: "
                                     "neither bank's labels file marks a mule; there is nothing to learn")
    if not ctx.is_dealer:
        await training.follow_epochs(result, lambda k, total: log.info("progress: epoch %d/%d", k, total))
    await training.check_divergence(result)
    train_online_s = time.time() - t_train
    rounds_per_step = await training.rounds_per_step(result)
    online = ctx.party.stats.total(phase="online")
    train_stats = {"bytes": online.bytes_sent, "rounds": ctx.party.stats.rounds - rounds_before}

    ctx.hold()  # phase 2, scoring with the shared weights
    t_deal = time.time()
    kind = training.sigmoid_kind(ctx)
    scores = training.logits(ctx, result.layers, x[my_score - lo]) if len(my_score) else None
    flags = ctx.reveal(ctx.less(training.probability_threshold_logit(threshold, kind), scores)) \
        if scores is not None else None
    await ctx.release()
    deal_score_s = time.time() - t_deal
    log.info("progress: scoring")
    t_score = time.time()
    flag_values = await flags if flags is not None else (None if ctx.is_dealer else np.zeros(0, np.int64))
    score_online_s = time.time() - t_score
    flag_values = await group.concat_own(flag_values)  # the party's flags, its shards' in order
    weights = await training.open_weights(ctx, result) if reveal_model else None
    target = model_out.replace("{party}", me) if model_out else ""
    scaler = {"mean": mean, "std": std} if mean is not None and std is not None else None
    # every shard holds the same shares of the weights: shard 0 writes them
    digest = await training.save_shares(ctx, result, target, scaler) if target and group.root else None
    stats = ctx.party.stats
    traffic = await group.sum_own(np.array([train_stats["bytes"], stats.total(phase="online").bytes_sent,
                                            stats.total(phase="offline").bytes_sent]))  # over the party's shards
    assert traffic is not None
    out: dict[str, Any] = {
        "accounts": n, "train_accounts": len(train_rows), "scored_accounts": len(score_rows),
        "steps": result.steps, "rounds_per_step": rounds_per_step, "train_online_s": train_online_s,
        "train_rounds": train_stats["rounds"], "train_bytes_online": int(traffic[0]),
        "train_dealer_s": deal_train_s, "score_dealer_s": deal_score_s, "score_online_s": score_online_s,
        "rounds": stats.rounds, "bytes_online": int(traffic[1]),
        "bytes_offline": int(traffic[2]), "comparison_method": ",".join(stats.methods_used()) or None,
        "sigmoid": kind, "architecture": cfg.architecture(2 * N_FEATURES), "model_digest": digest,
        "workers": group.count,
        "resumed_after_epoch": start.epochs_done if start is not None else 0, **party_memory(ctx.party),
    }
    if ctx.is_dealer:
        out["learned"] = (f"the number of accounts ({n}), the split and the model's shape; no transactions, "
                          "features, labels, weights, scores or flags")
        return out
    assert flag_values is not None
    out["flags"] = flag_values.astype(np.int8).tolist()
    out["flagged_accounts"] = accounts[score_rows][flag_values.astype(bool)].tolist()
    if weights is not None:
        out["weights"] = [[w.tolist(), b.tolist()] for w, b in weights]
    if audit:
        out["audit"] = await _audit(ctx, group, result, scores)
    other = banks[1 - banks.index(me)]
    learned = [f"its own transactions, features and labels; the public account list and split ({n} accounts)",
               "whether any training label is positive", f"one bit per epoch ({cfg.epochs}): whether any weight "
               "left the safe range (no: no divergence)", "the flags of the scored accounts"]
    learned.append("the model's weights (--reveal-model)" if weights is not None else
                   "its own share of the model (uniformly random by itself)" + (f", written to {target}"
                                                                               if target else ""))
    out["learned"] = "; ".join(learned) + f"; nothing of {other}'s data"
    return out


INPUT_ROWS = 100_000  # accounts whose features a bank reads and shares at once


def _standardised_features(path: Path, accounts: np.ndarray, train_rows: np.ndarray,
                           tmp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bank's features, computed streamed from its transactions file (features.compute_file) into a file
    on disk, standardised with its own statistics over the training accounts; returned as a read-only
    memory map (pages read as each block is shared, not held), with the mean and std."""
    n = len(accounts)
    raw = np.lib.format.open_memmap(tmp / "raw.npy", mode="w+", dtype=np.float64, shape=(n, N_FEATURES))
    is_train = np.zeros(n, dtype=bool)
    is_train[train_rows] = True
    total = np.zeros(N_FEATURES)
    squares = np.zeros(N_FEATURES)
    for lo, hi, block in features.compute_file(path, accounts):
        raw[lo:hi] = block
        rows = block[is_train[lo:hi]]
        total += rows.sum(axis=0)
        squares += (rows * rows).sum(axis=0)
    count = max(1, len(train_rows))
    mean = total / count if len(train_rows) else np.zeros(N_FEATURES)
    var = np.maximum(squares / count - mean * mean, 0.0)
    std = np.sqrt(var) if len(train_rows) else np.ones(N_FEATURES)
    std = np.where(std > 0, std, 1.0)
    for lo in range(0, n, INPUT_ROWS):
        raw[lo:lo + INPUT_ROWS] = apply_scaler(raw[lo:lo + INPUT_ROWS], mean, std)
    raw.flush()
    del raw
    return np.load(tmp / "raw.npy", mmap_mode="r"), mean, std


def _declared(value: Any) -> SharedArray:
    """ctx.input with a declared shape returns the shared array itself (it resolves once online)."""
    assert isinstance(value, SharedArray)
    return value


async def _any_positive(task: Any, n_train: int) -> bool:
    value = await task
    return value is None or int(value) == 1


async def _scaler(group: Shards, raw: np.ndarray | None, total: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of a bank's own features over ALL its training rows, from its shards'
    parts (this shard's training rows `raw`): a sum, then a sum of squared deviations, over the party's own
    shards (its own cleartext; `standardise` on all rows, unsharded). The helper passes None."""
    width = N_FEATURES
    sums = await group.sum_own(None if raw is None else raw.sum(axis=0))
    mean = sums / total if sums is not None and total else np.zeros(width)
    squares = await group.sum_own(None if raw is None else ((raw - mean) ** 2).sum(axis=0))
    std = np.sqrt(squares / total) if squares is not None and total else np.ones(width)
    return mean, np.where(std > 0, std, 1.0)


async def _audit(ctx: Context, group: Shards, result: training.SharedWeights, scores: Any) -> dict[str, Any]:
    """This bank's own shares of the scores and weights, for the demo's auditor who holds everything
    anyway (synthetic data): random by themselves; never sent to the other bank."""
    share = await group.concat_own(await ctx.own_share(scores) if scores is not None else np.zeros(0, np.uint64))
    weights = [[(await ctx.own_share(w)), (await ctx.own_share(b))] for w, b in result.layers]
    return {"frac_bits": scores.frac_bits, "weight_frac_bits": ctx.frac_bits, "scores": np.asarray(share).tolist(),
            "weights": [[np.asarray(w).tolist(), np.asarray(b).tolist()] for w, b in weights]}


fraud_train.own_params = ("data_dir", "labels_file", "model_out", "checkpoint_dir")  # type: ignore[attr-defined]
fraud_train.shardable = True  # type: ignore[attr-defined]
__all__ = ["fraud_train", "read_bank_labels", "split", "standardise"]
