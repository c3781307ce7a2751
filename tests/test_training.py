"""Training on shares: against the float64 reference, rounds per step, fused gates, share files, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mpc.ring import decode_fixed, encode_fixed
from protocols.applications import training as tr
from protocols.interface.context import Context, run_local
from protocols.interface.emulation import emulate
from protocols.interface.testing import run_local_with_test_dealer

RNG = np.random.default_rng(5)
N, D = 384, 6
X = np.clip(RNG.normal(0, 1, (N, D)), -4, 4)
Y = (X[:, 0] - X[:, 1] + 0.7 * X[:, 2] * X[:, 3] + 0.5 * RNG.normal(size=N) > 1.2).astype(np.int64)
# Weight tolerance against float64: truncations move a weight by ~1e-5 per step; a ReLU derivative bit that
# flips where z is within one unit in the last place of 0 moves the weights by up to lr/B |delta h| ~ 3e-3.
TOL = {(): 2e-3, (8, 4): 1e-2}
LR = tr.TrainConfig(learning_rate=0.5, epochs=2, batch_size=64, class_weight=2.0)
MLP = tr.TrainConfig(hidden=(8, 4), learning_rate=0.3, epochs=2, batch_size=64, class_weight=2.0, seed=3)


async def inputs(ctx: Context, x: np.ndarray = X, y: np.ndarray = Y) -> tuple[Any, Any]:
    """Vertically partitioned: bank_a holds the features, bank_b the labels."""
    xs = ctx.input("bank_a", x if ctx.name == "bank_a" else None, shape=x.shape, fixed=True)
    ys = ctx.input("bank_b", y if ctx.name == "bank_b" else None, shape=y.shape, fixed=False)
    return await xs, await ys  # (emulation's input is a task)


def train_and_open(cfg: tr.TrainConfig) -> Any:
    async def program(ctx: Context) -> Any:
        result = tr.train(ctx, *(await inputs(ctx)), cfg)
        rounds = await tr.rounds_per_step(result)
        await tr.check_divergence(result)
        return await tr.open_weights(ctx, result), rounds

    return program


def assert_close(got: tr.Weights, ref: tr.Weights, tol: float) -> None:
    for (w, b), (rw, rb) in zip(got, ref, strict=True):
        assert w.shape == rw.shape and b.shape == rb.shape
        assert np.max(np.abs(w - rw)) <= tol, np.max(np.abs(w - rw))
        assert np.max(np.abs(b - rb)) <= tol, np.max(np.abs(b - rb))


@pytest.mark.parametrize(("cfg", "dealer", "rounds"), [(LR, "local-test", 4), (MLP, "helper", 12)])
def test_training_matches_the_float64_reference_in_4_rounds_per_layer(make_topology, cfg, dealer, rounds) -> None:
    """Logistic regression: 4 online rounds per SGD step; the 3-layer MLP: 12 (4 per layer), with dcf."""
    runner = run_local_with_test_dealer if dealer == "local-test" else run_local
    out = runner(make_topology(2, comparison="dcf"), train_and_open(cfg))
    (weights, measured), (other, _) = out["bank_a"].value, out["bank_b"].value
    ref = tr.train_reference(cfg, X, Y.astype(float))
    assert_close(weights, ref, TOL[cfg.hidden])
    assert_close(other, weights, 0)
    assert measured == rounds
    assert np.max(np.abs(ref[0][0])) > 0.1  # it learned something: the comparison is not of zeros


@pytest.mark.parametrize(("method", "rounds"), [("bits", None), ("compact", 15)])
def test_other_comparison_methods_train_the_same_model(make_topology, method: str, rounds: int | None) -> None:
    """bits, and compact: the MLP's 3 layers' gates and the loss's clip take one more round each (15)."""
    out = run_local_with_test_dealer(make_topology(2, comparison=method), train_and_open(MLP))
    assert_close(out["bank_a"].value[0], tr.train_reference(MLP, X, Y.astype(float)), TOL[MLP.hidden])
    if rounds is not None:
        assert out["bank_a"].value[1] == rounds


def test_emulation_predicts_the_rounds_and_result(make_topology) -> None:
    report = emulate(make_topology(2, comparison="dcf"), train_and_open(MLP))
    assert report.ok, report.findings
    weights, rounds = report.results["bank_a"]
    assert rounds == 12
    assert_close(weights, tr.train_reference(MLP, X, Y.astype(float)), TOL[MLP.hidden])


def test_bit_trunc_and_sign_relu_trunc_are_one_round_each(make_topology) -> None:
    f = 16
    t = np.concatenate([RNG.normal(0, 50, 200), [0.0, -1e-5, 1e-5, 2.0**20, -(2.0**20)]])
    bits = (RNG.random(t.size) < 0.5).astype(np.int64)
    z = np.concatenate([RNG.normal(0, 30, 200), [0.0, -2.0**-16, 2.0**-16, 1000.0, -1000.0]])

    async def program(ctx: Context) -> Any:
        tt = await ctx.input("bank_a", encode_fixed(t, 2 * f).view(np.int64) if ctx.name == "bank_a" else None,
                             shape=t.shape, fixed=False)
        tt = tt.local(lambda s: s, tt.shape, frac=2 * f)
        bb = await ctx.input("bank_b", bits if ctx.name == "bank_b" else None, shape=bits.shape, fixed=False)
        zz = await ctx.input("bank_b", z if ctx.name == "bank_b" else None, shape=z.shape, fixed=True)
        zz = ctx.mul(zz, 1.0, truncate=False)  # at 2f bits
        start = max(await tt.depth(), await bb.depth(), await zz.depth())
        prod = tr.bit_trunc(ctx, bb, tt, f)
        msb, relu = tr.sign_relu_truncate(ctx, zz, f)
        depths = [await v.depth() - start for v in (prod, msb, relu)]
        return await ctx.reveal(prod), await ctx.reveal(msb), await ctx.reveal(relu), depths

    out = run_local_with_test_dealer(make_topology(2, comparison="dcf"), program)
    prod, msb, relu, _ = out["bank_a"].value
    # the rounds after the inputs: the later of the two banks (an input is at depth 0 on its owner)
    assert np.max([out[b].value[3] for b in ("bank_a", "bank_b")], axis=0).tolist() == [1, 1, 1]
    ulp = 2.0**-f
    assert np.all(np.abs(prod - bits * t) <= ulp + 1e-12), np.max(np.abs(prod - bits * t))
    assert np.array_equal(msb, (z < 0).astype(np.int64))
    assert np.all(np.abs(relu - np.maximum(z, 0)) <= ulp)


def test_diverging_learning_rate_is_an_error(make_topology) -> None:
    wild = tr.TrainConfig(hidden=(8, 4), learning_rate=5000.0, epochs=2, batch_size=64, seed=3)
    with pytest.raises(Exception, match="training diverged: after epoch 1, .* lower the learning rate"):
        run_local_with_test_dealer(make_topology(2, comparison="dcf"), train_and_open(wild))


def test_labels_that_are_not_bits_are_an_error(make_topology) -> None:
    labels = Y.copy()
    labels[[3, 50, 51]] = [2, -1, 7]

    async def program(ctx: Context) -> Any:
        result = tr.train(ctx, *(await inputs(ctx, y=labels)), LR)
        await tr.check_divergence(result)

    with pytest.raises(Exception, match="labels must be 0 or 1, but some of the 384 labels are not"):
        run_local_with_test_dealer(make_topology(2, comparison="dcf"), program)


@pytest.mark.parametrize(("cfg", "message"), [
    (tr.TrainConfig(learning_rate=0), "learning_rate must be a positive number"),
    (tr.TrainConfig(epochs=0), "epochs must be at least 1"),
    (tr.TrainConfig(class_weight=-1), "class_weight must be a positive number"),
    (tr.TrainConfig(learning_rate=1e-30), "outside the fixed-point range"),
])
def test_bad_hyperparameters_are_named(cfg: tr.TrainConfig, message: str) -> None:
    with pytest.raises(tr.TrainingError, match=message):
        cfg.validate(10)
        tr._update_divisor(cfg, 64, 32, 16)


def two_sessions(make_topology, tmp_path: Path, cfg: tr.TrainConfig, tag: str) -> dict[str, Path]:
    """Train, and each bank writes its own share file."""
    files = {p: tmp_path / f"{tag}_{p}.npz" for p in ("bank_a", "bank_b")}

    async def program(ctx: Context) -> Any:
        result = tr.train(ctx, *(await inputs(ctx)), cfg)
        digest = await tr.save_shares(ctx, result, files[ctx.name]) if ctx.name in files else \
            await tr.save_shares(ctx, result, tmp_path / "helper_never.npz")
        return digest, await tr.open_weights(ctx, result)

    out = run_local_with_test_dealer(make_topology(2, comparison="dcf"), program)
    assert out["bank_a"].value[0] == out["bank_b"].value[0]  # the same digest in both banks' files
    assert not (tmp_path / "helper_never.npz").exists()
    np.save(tmp_path / f"{tag}_weights.npy", np.array(out["bank_a"].value[1], dtype=object), allow_pickle=True)
    return files


def score_session(make_topology, files: dict[str, Path], arch: str) -> Any:
    async def program(ctx: Context) -> Any:
        loaded = tr.read_shares(files[ctx.name], ctx.name, arch, ctx.frac_bits) if ctx.name in files else None
        layers = await tr.load_shared_weights(ctx, arch, loaded, {k: str(v) for k, v in files.items()})
        x = await ctx.input("bank_a", X if ctx.name == "bank_a" else None, shape=X.shape, fixed=True)
        return await ctx.reveal(tr.logits(ctx, layers, x))

    return run_local_with_test_dealer(make_topology(2, comparison="dcf"), program)["bank_a"].value


def test_share_files_score_in_a_later_session_and_mismatches_are_refused(make_topology, tmp_path: Path) -> None:
    files = two_sessions(make_topology, tmp_path, MLP, "one")
    arch = MLP.architecture(D)
    opened = np.load(tmp_path / "one_weights.npy", allow_pickle=True).tolist()
    got = score_session(make_topology, files, arch)
    assert np.max(np.abs(got - tr.predict_reference(opened, X))) < 1e-3
    share = np.load(files["bank_a"])["w0"]
    assert share.dtype == np.uint64 and abs(decode_fixed(share, 16)).max() > 1e6  # one share alone: random

    other = two_sessions(make_topology, tmp_path, MLP, "two")  # same model and shape, another session
    with pytest.raises(Exception, match="not of the same model"):
        score_session(make_topology, {"bank_a": files["bank_a"], "bank_b": other["bank_b"]}, arch)
    with pytest.raises(tr.TrainingError, match="a model of architecture 6-8-relu,8-4-relu,4-1-logistic, but this "
                                               "session expects 6-1-logistic"):
        tr.read_shares(files["bank_a"], "bank_a", "6-1-logistic", 16)
    with pytest.raises(tr.TrainingError, match="holds bank_a's share of the model, not bank_b's"):
        tr.read_shares(files["bank_a"], "bank_b", arch, 16)
    with pytest.raises(tr.TrainingError, match="at 16 fractional bits, but the topology's frac_bits is 20"):
        tr.read_shares(files["bank_a"], "bank_a", arch, 20)
    with pytest.raises(tr.TrainingError, match="no such model share file"):
        tr.read_shares(tmp_path / "missing.npz", "bank_a", arch, 16)
    with np.load(files["bank_a"]) as z:  # one weight share edited, the metadata untouched
        edited = {k: z[k] for k in z.files}
    edited["w0"] = edited["w0"] + np.uint64(1)
    np.savez(tmp_path / "edited.npz", **edited)
    with pytest.raises(tr.TrainingError, match="arrays do not match their checksum"):
        tr.read_shares(tmp_path / "edited.npz", "bank_a", arch, 16)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(tr.TrainingError, match="not a model share file"):
        tr.read_shares(tmp_path / "junk.npz", "bank_a", arch, 16)
