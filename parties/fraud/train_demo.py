"""The harness of `mpc demo fraud` when the banks train the model on shares (the default).

It runs program `fraud-train` (parties/fraud/train.py) as three processes, then plays the auditor, who
may see everything because the data are synthetic (or the user's own files): from the same files it
trains (b) the same algorithm in float64 numpy, (c) scikit-learn's fit of the same model class and
(d) each bank alone on its own columns and labels, and compares them on the scored accounts with (a)
the model trained on shares (its scores and weights added from the banks' audit shares).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mpc.ring import decode_fixed
from parties.fraud import data, features
from parties.fraud import train as secure_train
from protocols.applications import training

Outputs = dict[str, dict[str, Any]]
SKLEARN_ROWS = 100_000  # scikit-learn (c) fits at most this many training accounts (a seeded sample)


def params(opts: Any, data_dir: Path, model_out: str) -> dict[str, object]:
    """The program's parameters (shared by every party, but data_dir and model_out)."""
    return {"data_dir": str(data_dir), "model": opts.model, "epochs": opts.epochs,
            "learning_rate": opts.learning_rate, "batch_size": opts.batch_size, "class_weight": opts.class_weight,
            "seed": opts.seed, "train_fraction": opts.train_fraction, "reveal_model": opts.reveal_model,
            "model_out": model_out, "audit": True, **_checkpoints(opts)}


def _checkpoints(opts: Any) -> dict[str, object]:
    """checkpoint_dir (each bank's files, named by bank) and resume, from --checkpoint-dir or --resume."""
    directory = opts.resume or opts.checkpoint_dir
    if not directory:
        return {}
    Path(directory).mkdir(parents=True, exist_ok=True)
    return {"checkpoint_dir": str(Path(directory).resolve()), "resume": bool(opts.resume)}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); None without both classes."""
    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def metrics(scores: np.ndarray, flags: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    known = labels != data.UNLABELLED
    s, f, y = scores[known], flags[known].astype(bool), labels[known]
    tp = int((f & (y == 1)).sum())
    return {"flagged": int(flags.sum()), "precision": tp / int(f.sum()) if f.sum() else 0.0,
            "recall": tp / int((y == 1).sum()) if (y == 1).any() else None, "auc": roc_auc(s, y)}


def _add_shares(outputs: Outputs, banks: list[str], get: Any, frac: int) -> np.ndarray:
    total = sum((np.asarray(get(outputs[b]["audit"]), dtype=np.uint64) for b in banks), start=np.uint64(0))
    return decode_fixed(np.asarray(total, dtype=np.uint64), frac)


def audited_weights(outputs: Outputs, banks: list[str]) -> training.Weights:
    """The secure model's weights, added from the banks' shares by the auditor."""
    frac = outputs[banks[0]]["audit"]["weight_frac_bits"]
    layers = []
    for i in range(len(outputs[banks[0]]["audit"]["weights"])):
        w = _add_shares(outputs, banks, lambda a, i=i: a["weights"][i][0], frac)
        b = _add_shares(outputs, banks, lambda a, i=i: a["weights"][i][1], frac)
        layers.append((w, b))
    return layers


def sklearn_scores(model: str, cfg: training.TrainConfig, x: np.ndarray, y: np.ndarray,
                   x_score: np.ndarray) -> np.ndarray | None:
    """scikit-learn's fit of the same model class (its own solver and defaults), as logits; None if
    scikit-learn is not installed (the `train` or `test` extra)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    if model == "logistic":
        lr = LogisticRegression(class_weight={0: 1.0, 1: cfg.class_weight}, max_iter=1000).fit(x, y)
        return np.asarray(lr.decision_function(x_score))
    mlp = MLPClassifier(cfg.hidden, random_state=cfg.seed, max_iter=500).fit(x, y)
    p = np.clip(mlp.predict_proba(x_score)[:, 1], 1e-12, 1 - 1e-12)
    return np.asarray(np.log(p / (1 - p)))


def raw_features(ds: data.Dataset, bank: str, accounts: np.ndarray | None = None) -> np.ndarray:
    """A bank's features of `accounts` (default: the list), as the auditor computes them: from its file,
    streamed (features.compute_file), or from transactions in memory."""
    accounts = ds.accounts if accounts is None else accounts
    if ds.directory is None:
        return features.compute(ds.bank_a if bank == "bank_a" else ds.bank_b, accounts)
    return np.vstack([block for _, _, block in features.compute_file(ds.directory / f"{bank}.csv", accounts)])


def report(opts: Any, ds: data.Dataset, outputs: Outputs, banks: list[str], helper: str,
           known: list[np.ndarray]) -> dict[str, Any]:
    """The four models side by side on the scored accounts, costs, and what each party learned."""
    bank_out = [outputs[b] for b in banks]
    first = bank_out[0]
    n = len(ds.accounts)
    train_rows, score_rows = secure_train.split(n, opts.seed, opts.train_fraction)
    raw = [raw_features(ds, bank) for bank in ("bank_a", "bank_b")]
    cols = [secure_train.standardise(r, train_rows)[0] for r in raw]
    y_or = (known[0] | known[1])[train_rows].astype(float)
    x_all = np.hstack(cols)
    cfg = training.TrainConfig(hidden=secure_train.MODELS[opts.model], learning_rate=opts.learning_rate,
                               epochs=opts.epochs, batch_size=opts.batch_size, seed=opts.seed,
                               class_weight=opts.class_weight)
    kind = first["sigmoid"]
    cut = training.probability_threshold_logit(0.5, kind)
    truth = ds.labels[score_rows] if ds.labels is not None else np.full(len(score_rows), data.UNLABELLED)

    secure_scores = _add_shares(outputs, banks, lambda a: a["scores"], first["audit"]["frac_bits"])
    secure_flags = np.asarray(first["flags"], dtype=np.int64)
    secure_w = audited_weights(outputs, banks)
    ref_w = training.train_reference(cfg, x_all[train_rows], y_or, sigmoid=kind)
    ref_scores = training.predict_reference(ref_w, x_all[score_rows])
    with_secure_w = training.predict_reference(secure_w, x_all[score_rows])
    rows: dict[str, dict[str, Any]] = {
        "secure": metrics(secure_scores, secure_flags, truth),
        "reference": metrics(ref_scores, (ref_scores > cut).astype(np.int64), truth),
    }
    fit = train_rows
    if len(fit) > SKLEARN_ROWS:  # scikit-learn's MLP on half a million rows would take most of an hour
        fit = np.sort(np.random.default_rng([opts.seed, 5]).choice(train_rows, SKLEARN_ROWS, replace=False))
    sk = sklearn_scores(opts.model, cfg, x_all[fit], (known[0] | known[1])[fit].astype(float), x_all[score_rows])
    rows["sklearn"] = metrics(sk, (sk > 0).astype(np.int64), truth) if sk is not None else {}
    for i, bank in enumerate(banks):
        y_own = known[i][train_rows].astype(float)
        alone_cfg = cfg
        w = training.train_reference(alone_cfg, cols[i][train_rows], y_own, sigmoid=kind)
        s = training.predict_reference(w, cols[i][score_rows])
        rows[f"{bank}_alone"] = metrics(s, (s > cut).astype(np.int64), truth)
    drift = max(float(np.max(np.abs(a - b))) for (wa, ba), (wb, bb) in zip(secure_w, ref_w, strict=True)
                for a, b in ((wa, wb), (ba, bb)))
    out: dict[str, Any] = {
        "accounts": n, "train_accounts": len(train_rows), "scored_accounts": len(score_rows),
        "labelled_accounts": int((truth != data.UNLABELLED).sum()),
        "sklearn_rows": int(min(len(train_rows), SKLEARN_ROWS)),
        "model": opts.model, "architecture": first["architecture"], "sigmoid": kind,
        "flags_match_secure_weights": bool(np.array_equal((with_secure_w > cut).astype(np.int64), secure_flags)),
        "max_score_error_secure_weights": float(np.max(np.abs(with_secure_w - secure_scores), initial=0.0)),
        "weight_drift_vs_reference": drift, "model_revealed": "weights" in first,
        "model_digest": first.get("model_digest"),
        "train_steps": first["steps"], "resumed_after_epoch": first.get("resumed_after_epoch", 0),
        "train_rounds_per_step": first["rounds_per_step"],
        "train_rounds": max(o["train_rounds"] for o in bank_out),
        "train_bytes_online": max(o["train_bytes_online"] for o in bank_out),
        "train_online_s": max(o["train_online_s"] for o in bank_out),
        "train_dealer_s": max(o["train_dealer_s"] for o in bank_out),  # the banks wait for all of theirs
        "score_online_s": max(o["score_online_s"] for o in bank_out),
        "score_dealer_s": max(o["score_dealer_s"] for o in bank_out),
        "rounds": max(o["rounds"] for o in bank_out),
        "bytes_online": max(o["bytes_online"] for o in bank_out),
        "bytes_offline": outputs[helper]["bytes_offline"] if helper else None,
        "comparison_method": first["comparison_method"],
        "learned": {name: o["learned"] for name, o in outputs.items()},
        "peak_rss_mb": {name: o.get("peak_rss_mb") for name, o in outputs.items()},
        "peak_material_mb": {name: o.get("peak_material_mb") for name, o in outputs.items()},
    }
    if "weights" in first:  # --reveal-model: both banks opened them
        out["weights"] = first["weights"]
    for name, row in rows.items():
        for key in ("auc", "precision", "recall", "flagged"):
            out[f"{key}_{name}"] = row.get(key)
    return out


def print_report(report: dict[str, Any], say: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"cross-bank fraud detection: trained on {report['train_accounts']:,} accounts, "
                        f"scored {report['scored_accounts']:,} ({report['source']})")
    for col in ("model", "flagged", "precision", "recall", "ROC AUC"):
        table.add_column(col, justify="left" if col == "model" else "right")
    names = {"secure": f"(a) joint, trained on shares ({report['architecture']})",
             "reference": "(b) same algorithm, float64 numpy, pooled data",
             "sklearn": "(c) scikit-learn, same model class, pooled data",
             "bank_a_alone": "(d) bank_a alone (own features and labels)",
             "bank_b_alone": "(d) bank_b alone (own features and labels)"}
    for key, label in names.items():
        table.add_row(label, _num(report.get(f"flagged_{key}")), _fmt(report.get(f"precision_{key}")),
                      _fmt(report.get(f"recall_{key}")), _fmt(report.get(f"auc_{key}"), 4))
    console.print(table)
    if report.get("auc_sklearn") is None:
        say("(c) needs scikit-learn: pip install -e '.[train]'", markup=False)
    same = "yes" if report["flags_match_secure_weights"] else "NO"
    say(f"flags identical to plain numpy scoring with the secure model's weights: {same}; weights within "
        f"{report['weight_drift_vs_reference']:.1e} of the float64 reference ({report['sigmoid']} sigmoid)")
    say(f"training: {report['train_steps']} SGD steps, {report['train_rounds_per_step']:g} rounds per step "
        f"({report['comparison_method']} comparisons), {report['train_rounds']:,} rounds, "
        f"{report['train_bytes_online']:,} bytes per bank, {report['train_online_s']:.2f} s online; dealer "
        f"{report['train_dealer_s']:.2f} s")
    say(f"scoring: {report['score_online_s']:.3f} s online, dealer {report['score_dealer_s']:.2f} s; all: "
        f"{report['bytes_offline']:,} dealer bytes; end to end {report['end_to_end_s']:.1f} s")
    if report.get("model_files"):
        say(f"model shares: {', '.join(report['model_files'])} (digest {report['model_digest'][:16]}...)")
    if report["model_revealed"]:
        say("the weights were opened to both banks (--reveal-model)")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _num(value: int | None) -> str:
    return "" if value is None else str(value)
