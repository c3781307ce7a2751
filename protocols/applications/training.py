"""Private training on secret shares: logistic regression and small ReLU networks by mini-batch SGD.

Features and labels are shared; the weights stay shared during and after training. Hyperparameters
(learning rate, epochs, batch size, seed, class weight) are public, and so is the batch order: a batch
is a public selection of shared rows, which is local. The same algorithm runs in float64 numpy
(`train_reference`) from the same initial weights and batch order, for comparison.

One SGD step, online rounds with the dcf method (measured, see tests/test_training.py):

- logistic regression, 4: the forward product x_b @ w (kept at 2f bits), the sigmoid gate (its
  truncation fused: one DCF gate for the hard sigmoid), the gradient [x, 1]_b^T (p - y), and the update
  w -= lr / B * g as ONE division by the public integer 2^f B / lr (the learning rate, the batch mean and
  the truncation in one round).
- MLP, 4 per layer: forward per layer a product and one gate giving both [z < 0] and relu(z) >> f
  (gates.SIGN_RELU_TRUNC: the truncation fused, and the comparison bit kept for the backward pass);
  backward per layer the two products delta @ W^T and h^T delta side by side, then ONE round for
  relu'(z) * trunc(delta W^T) (`bit_trunc`: a product by the forward's 0/1 bit with the truncation
  fused into it); the update of all weights is one division.

Class weights (a weight c for the rare positive class) enter without a round on the critical path:
c_i = 1 + (c - 1) y_i is local (c public, y shared), and the products by c are taken beside the forward
pass (for logistic regression once, before training).

Sigmoid: SecureML's "hard sigmoid" clip(z/4 + 1/2, 0, 1), one ReLU-truncation gate on [u, u - 1] that
also truncates the product it follows: 1 round. The spline sigmoid of protocols/interface/functions.py (error
7.5e-4) costs 2 rounds and cannot take the untruncated product, so a step would take 5 rounds; training
needs the gradient's sign and rough size, not the curve's last digits, and scoring after training uses
the same function the model was trained with (the float64 reference uses it too). The loss gradient is
p - y, as for the logistic loss.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc.prg import random_ring
from mpc.settings import Comparison
from protocols.applications.models import Model, SharedModel, hard_sigmoid_shared, parse_architecture
from protocols.interface import collectives
from protocols.interface.context import Context
from protocols.primitives import comparison, gates, truncation
from protocols.primitives.core import Cost, Engine, Exchange, Material, Spec, run_protocol
from protocols.primitives.shared import SharedArray, concatenate, constant, resolved

TOP = np.uint64(63)
LOW63 = np.uint64(2**63 - 1)
OFFSET = np.uint64(1 << truncation.OFFSET_BITS)
SHARE_FORMAT = 1  # version of the model share file


class TrainingError(ValueError):
    """Training cannot go on, or went wrong (e.g. the learning rate diverges); the message says why."""


@dataclass(frozen=True)
class TrainConfig:
    """Public hyperparameters, agreed by every party like any program parameter."""

    hidden: tuple[int, ...] = ()  # () logistic regression; (16, 8) the fraud demo's 16-16-8-1 network
    learning_rate: float = 0.5
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0  # initial weights and batch order
    class_weight: float = 1.0  # weight of the positive class in the loss
    check_divergence: bool = True  # open, per epoch, how many weights left the safe range (0 normally)

    def validate(self, n_rows: int) -> None:
        problems = []
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning_rate must be a positive number, not {self.learning_rate}")
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, not {self.batch_size}")
        if not (np.isfinite(self.class_weight) and self.class_weight > 0):
            problems.append(f"class_weight must be a positive number, not {self.class_weight}")
        if any(h < 1 for h in self.hidden):
            problems.append(f"hidden layer sizes must be positive, not {self.hidden}")
        if n_rows < 1:
            problems.append("no training rows")
        if problems:
            raise TrainingError("training: " + "; ".join(problems))

    def sizes(self, n_features: int) -> list[int]:
        return [n_features, *self.hidden, 1]

    def architecture(self, n_features: int) -> str:
        """As protocols.applications.models: 'IN-OUT-ACTIVATION' per layer, e.g. '16-16-relu,16-8-relu,8-1-logistic'."""
        s = self.sizes(n_features)
        acts = ["relu"] * (len(s) - 2) + ["logistic"]
        return ",".join(f"{a}-{b}-{act}" for a, b, act in zip(s, s[1:], acts, strict=False))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


Weights = list[tuple[np.ndarray, np.ndarray]]  # per layer (W of shape (inputs, outputs), b of shape (outputs,))


@dataclass
class SharedWeights:
    """The weights as shared values, and what training measured."""

    layers: list[tuple[SharedArray, SharedArray]]
    config: TrainConfig
    model_id: Any = None  # (a task giving) a joint random id of this training session, opened (see save)
    steps: int = 0
    rows: int = 0
    start: SharedArray | None = None  # the training data (its depth: where training started)
    epoch_ends: list[SharedArray] = field(default_factory=list)  # a value ready when each epoch has ended
    out_of_range: list[Any] = field(default_factory=list)  # per epoch, the opened bit: any weight out of range
    not_bits: Any = None  # the opened bit: is any label other than 0 or 1 (a task), if checked

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [w.shape for w, _ in self.layers]  # type: ignore[misc]

    @property
    def model(self) -> SharedModel:
        """The trained model as a models.SharedModel, the type of any model on shares: ReLU hidden layers
        and the hard sigmoid training used at the output (its scores are probabilities)."""
        acts = ["relu"] * (len(self.layers) - 1) + ["hard_sigmoid"]
        return SharedModel(tuple((w, b, a) for (w, b), a in zip(self.layers, acts, strict=True)))

    def score(self, ctx: Context, x: SharedArray) -> SharedArray:
        """Probabilities for shared rows x (see `model`)."""
        return self.model.score(ctx, x)

    async def reveal(self, ctx: Context, to: Sequence[str] | None = None) -> Model | None:
        """Open the trained weights to `to` (a policy choice): a public models.Model there, None elsewhere."""
        return await self.model.reveal(ctx, to)

    async def save(self, ctx: Context, path: str | Path) -> Path | None:
        """This party's own share of the trained weights (SharedModel.save; SharedModel.load reads it)."""
        return await self.model.save(ctx, path)


# -- the public parts: initial weights and batch order ---------------------------------------------

def initial_weights(cfg: TrainConfig, n_features: int) -> Weights:
    """Zeros for logistic regression; He-uniform weights and zero biases for a ReLU network (seeded)."""
    rng = np.random.default_rng([cfg.seed, 1])
    sizes = cfg.sizes(n_features)
    out = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        limit = np.sqrt(6.0 / a) if cfg.hidden else 0.0
        out.append((rng.uniform(-limit, limit, (a, b)), np.zeros(b)))
    return out


def batch_order(cfg: TrainConfig, n_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(epoch, row indices) per SGD step: a seeded permutation per epoch in batches (the last may be
    smaller). Public: every party derives the same order."""
    rng = np.random.default_rng([cfg.seed, 2])
    for epoch in range(cfg.epochs):
        order = rng.permutation(n_rows)
        for lo in range(0, n_rows, cfg.batch_size):
            yield epoch, np.sort(order[lo:lo + cfg.batch_size])


def steps_per_epoch(cfg: TrainConfig, n_rows: int) -> int:
    return -(-n_rows // cfg.batch_size)


# -- the float64 reference --------------------------------------------------------------------------

def hard_sigmoid(z: np.ndarray) -> np.ndarray:
    return np.clip(z / 4 + 0.5, 0.0, 1.0)


def logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def train_reference(cfg: TrainConfig, x: np.ndarray, y: np.ndarray, sigmoid: str = "hard",
                    init: Weights | None = None) -> Weights:
    """The same algorithm in float64 numpy: same initial weights, batch order and updates."""
    act = hard_sigmoid if sigmoid == "hard" else logistic
    layers = [(w.copy(), b.copy()) for w, b in (init or initial_weights(cfg, x.shape[1]))]
    c = 1.0 + (cfg.class_weight - 1.0) * y
    for _, idx in batch_order(cfg, len(x)):
        hs, bits = [x[idx]], []
        for w, b in layers[:-1]:
            z = hs[-1] @ w + b
            bits.append(z >= 0)
            hs.append(np.maximum(z, 0))
        p = act(hs[-1] @ layers[-1][0] + layers[-1][1])[:, 0]
        delta = (c[idx] * (p - y[idx]))[:, None]
        scale = cfg.learning_rate / len(idx)
        grads = []
        for k in range(len(layers) - 1, -1, -1):
            grads.append((hs[k].T @ delta, delta.sum(axis=0)))
            if k:
                delta = (delta @ layers[k][0].T) * bits[k - 1]
        for (w, b), (gw, gb) in zip(layers, reversed(grads), strict=True):
            w -= scale * gw
            b -= scale * gb
    return layers


def predict_reference(layers: Weights, x: np.ndarray) -> np.ndarray:
    """The logit (the score before the sigmoid) of every row."""
    h = x
    for w, b in layers[:-1]:
        h = np.maximum(h @ w + b, 0)
    return (h @ layers[-1][0] + layers[-1][1])[:, 0]


# -- gates and fused products -----------------------------------------------------------------------


def sign_relu_truncate(ctx: Engine, z: SharedArray, bits: int,
                       method: str | None = None) -> tuple[SharedArray, SharedArray]:
    """([z < 0], relu(z) >> bits). dcf: one round for both; bits: the sign and ReLU, then a truncation."""

    def keyed(compact: bool) -> tuple[SharedArray, SharedArray]:
        msb, h = gates.evaluate(ctx, gates.SIGN_RELU_TRUNC, z, bits, [0, z.frac_bits - bits], "sign_relu_trunc",
                                compact)
        return msb, h

    def by_bits() -> tuple[SharedArray, SharedArray]:
        sign, relu = comparison.sign_gate(ctx, z, relu=True, method=Comparison.BITS)
        assert relu is not None
        return sign, truncation.truncate(ctx, relu, bits)

    return comparison.by_method(ctx, "sign_relu_trunc", z.size, method, keyed=keyed, bits=by_bits)


def bit_trunc(ctx: Engine, bit: SharedArray, t: SharedArray, bits: int) -> SharedArray:
    """bit * (t >> bits) for a shared 0/1 integer `bit`, in ONE round (not a product, then a truncation).

    The truncation of t (protocols/primitives/truncation.py, dealer pair r, msb(r), low(r)) is affine in the dealer's
    shared values: t >> bits = A + B msb(r) - low(r) with A, B public once c = t + 2^62 + r is open. So
    bit * (t >> bits) = A bit + B (bit msb(r)) - bit low(r), and the two products by dealer values are
    Beaver products with a mask `a` of the bit: e = bit - a is opened in the same message as c, and
    bit msb(r) = e msb(r) + a msb(r) (the dealer shares a msb(r) and a low(r)). 2 words per element each
    way; floor or one more (times the bit), as the truncation; |t| < 2^62 ring units."""
    if bit.frac_bits:
        raise ValueError("bit_trunc: the first operand must be a shared 0/1 integer (a comparison bit)")
    shape = tuple(np.broadcast_shapes(bit.shape, t.shape))
    bit, t = bit.broadcast_to(shape), t.broadcast_to(shape)
    n = int(np.prod(shape, dtype=np.int64))
    shift = np.uint64(bits)
    hi = np.uint64(1 << (63 - bits))

    def low(env: dict[str, Any]) -> np.ndarray:
        return np.right_shift(env["r"] & LOW63, shift)

    spec = (Spec().random("a", (n,)).random("r", (n,))
            .shared("msb", (n,), lambda env: np.right_shift(env["r"], TOP))
            .shared("low", (n,), low)
            .shared("a_msb", (n,), lambda env: env["a"] * np.right_shift(env["r"], TOP))
            .shared("a_low", (n,), lambda env: env["a"] * low(env)))

    async def body(io: Exchange, mat: Material, ds: np.ndarray, ts: np.ndarray) -> np.ndarray:
        d = ds.ravel()
        masked = np.add(ts.ravel(), mat.r, dtype=np.uint64)
        if io.first:
            masked += OFFSET
        opened = await io.open(np.concatenate([d - mat.a, masked]))
        e, c = opened[:n], opened[n:]
        c_msb = np.right_shift(c, TOP)
        a_pub = c_msb * hi + np.right_shift(c & LOW63, shift) - np.uint64(1 << (truncation.OFFSET_BITS - bits))
        b_pub = (np.uint64(1) - np.uint64(2) * c_msb) * hi
        bit_msb = e * mat.msb + mat.a_msb
        bit_low = e * mat.low + mat.a_low
        return (a_pub * d + b_pub * bit_msb - bit_low).reshape(shape)

    def plain(dv: np.ndarray, tv: np.ndarray) -> np.ndarray:
        truncation.check_magnitude(ctx, "bit_trunc", tv, truncation.OFFSET_BITS, t.frac_bits, "before truncation")
        return dv * truncation.round_randomly(ctx, tv, bits)

    return run_protocol(ctx, "bit_trunc", spec, body, [bit, t], [(shape, t.frac_bits - bits)], plain=plain,
                        cost=Cost(1, 1, 16 * n))[0]


def sigmoid_kind(ctx: Context) -> str:
    """The sigmoid training and scoring use: 'hard' (see the module doc); the reference takes the same."""
    return "hard"


def _sigmoid(ctx: Context, z: SharedArray) -> SharedArray:
    """The hard sigmoid (models.hard_sigmoid_shared: a trained model scores with the same function)."""
    return hard_sigmoid_shared(ctx, z)


# -- training on shares -----------------------------------------------------------------------------

def _with_ones(ctx: Context, h: SharedArray) -> SharedArray:
    """[h, 1]: the bias as one more input (its gradient is then one more row of h^T delta)."""
    return concatenate([h, constant(ctx, np.ones((h.shape[0], 1), dtype=np.float64))], axis=1)


def _weighted(ctx: Context, h: SharedArray, c: SharedArray | None) -> SharedArray:
    """c_i * [h_i, 1] (rows), or [h, 1] without class weights."""
    aug = _with_ones(ctx, h)
    return aug if c is None else ctx.mul(aug, c[:, None])


def agree_model_id(ctx: Context) -> Any:
    """A joint random id for this session's model: each compute party's share is its own random draw, so
    the opened sum is uniform unless both collude. 1 round; the helper gets None."""
    mine = resolved(ctx, (2,), 0, random_ring((2,)))
    return ctx.reveal(mine)


def train(ctx: Context, x: SharedArray, y: SharedArray, cfg: TrainConfig,
          init: Weights | None = None, total_rows: int | None = None, first_row: int | None = None,
          checkpoints: Checkpoints | None = None, resume: ResumePoint | None = None) -> SharedWeights:
    """Train on shared rows x (n, d) at f fractional bits and shared 0/1 labels y (n,). Collective.

    Returns at once (every step is issued, none awaited): the helper deals as the dealer window lets it
    (mpc/window.py), so memory stays flat however many epochs and rows. The result's weights are shared.
    `checkpoints`: each bank writes its share of the weights at every epoch's end (atomically);
    `resume` (from `resume_point`): continue after the epochs it says are complete, from their weights.

    Data-parallel over a sharded party's shards (docs/sharding.md): with `total_rows`, x and y are this
    shard's rows `shards(ctx).rows(total_rows)` of the training set (or, with `first_row`, rows first_row ..
    first_row + len(x); the shards' rows must tile the training set in shard order). The batches are the unsharded run's
    (same seeded order over all rows); each shard computes the gradient of the batch rows it holds, the
    shards' gradient shares are summed within each party (no secure traffic), shard 0 applies the update
    once and broadcasts the new weights' shares to its party's other shards."""
    n_local, d = x.shape
    group = collectives.shards(ctx)
    if group.count > 1 and total_rows is None:
        raise TrainingError(f"training: a party of {group.count} shards trains data-parallel: pass total_rows, the "
                            "number of training rows over all shards")
    n = n_local if group.count == 1 else int(total_rows or 0)
    lo, hi = group.rows(n) if first_row is None else (first_row, first_row + n_local)
    cfg.validate(n)
    if hi - lo != n_local:
        raise TrainingError(f"training: shard {group.index} of {group.count} holds {n_local} rows, but its share of "
                            f"{n} rows is {hi - lo}")
    if y.shape != (n_local,):
        raise TrainingError(f"training: {n_local} rows of features but labels of shape {y.shape}")
    f = ctx.frac_bits
    layers = [(constant(ctx, w), constant(ctx, b)) for w, b in (init or initial_weights(cfg, d))]
    if resume is not None and resume.layers is not None:
        if [w.shape for w, _ in resume.layers] != [w.shape for w, _ in layers]:
            raise TrainingError("training: the checkpoint's layers do not match the model's shape")
        layers = list(resume.layers)
    if y.frac_bits:
        raise TrainingError("training: labels must be shared 0/1 integers, not fixed-point values")
    c = None if cfg.class_weight == 1.0 else y * (cfg.class_weight - 1.0) + 1.0  # local: c public
    # logistic regression: c_i [x_i, 1] once, before training (the only product by c)
    x_aug = _weighted(ctx, x, c) if not cfg.hidden else None
    model_id = agree_model_id(ctx) if resume is None or resume.layers is None else _known(resume.model_id)
    result = SharedWeights(layers, cfg, model_id, rows=n, start=x.sum() + y.sum())
    first = resume.epochs_done if resume is not None else 0
    if cfg.check_divergence:  # and the labels: how many are not 0/1 (y(y - 1) != 0), beside training
        not_bits = n_local - ctx.equal(y * (y - 1), 0).sum()
        result.not_bits = ctx.reveal(ctx.less(0, group.sum(not_bits)))  # one bit: any, on any shard?
    last_epoch = -1
    for epoch, idx in batch_order(cfg, n):
        if epoch < first:  # done before the resumed session: its batch order is drawn and skipped
            continue
        if epoch != last_epoch and last_epoch >= 0:
            _end_epoch(ctx, result, f, checkpoints, last_epoch)
        last_epoch = epoch
        if group.count > 1:
            mine = idx[(idx >= lo) & (idx < hi)] - lo
            result.layers = _sharded_step(ctx, group, result.layers, x, y, c, x_aug, mine, len(idx), cfg, f)
        else:
            c_b = None if c is None else c[idx]
            aug_b = x_aug[idx] if x_aug is not None else None
            result.layers = _step(ctx, result.layers, x[idx], y[idx], c_b, aug_b, cfg, f)
        result.steps += 1
    if last_epoch >= 0:
        _end_epoch(ctx, result, f, checkpoints, last_epoch)
    return result


def _end_epoch(ctx: Context, result: SharedWeights, f: int, checkpoints: Checkpoints | None, epoch: int) -> None:
    result.epoch_ends.append(result.layers[0][0])
    if result.config.check_divergence:
        result.out_of_range.append(ctx.reveal(ctx.less(0, _count_out_of_range(ctx, result, f))))  # one bit
    if checkpoints is not None and not ctx.is_dealer and collectives.shards(ctx).index == 0:  # shard 0 holds them
        ctx.spawn(checkpoints.write(ctx, result, list(result.layers), epoch + 1))


def _known(value: Any) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut


# -- checkpoints and resuming -------------------------------------------------------------------------

@dataclass
class Checkpoints:
    """Where each bank writes its share of the weights at every epoch's end (one file per epoch, written
    aside and renamed: a killed run leaves whole files only), keeping the last `keep`."""

    directory: Path
    keep: int = 2

    def path(self, party: str, epochs_done: int) -> Path:
        return self.directory / f"checkpoint_{party}_epoch{epochs_done:04d}.npz"

    def epochs(self, party: str) -> list[int]:
        """The epochs-complete counts of this party's checkpoint files present, in order."""
        out = []
        for p in self.directory.glob(f"checkpoint_{party}_epoch*.npz"):
            digits = p.stem.rsplit("epoch", 1)[-1]
            if digits.isdigit():
                out.append(int(digits))
        return sorted(out)

    async def write(self, ctx: Context, result: SharedWeights, layers: list[tuple[SharedArray, SharedArray]],
                    epochs_done: int) -> None:
        """Once this epoch's weights are computed: write this bank's shares of them, drop older files."""
        model_id = await result.model_id
        shares = [((await w.resolve()).share, (await b.resolve()).share) for w, b in layers]
        self.directory.mkdir(parents=True, exist_ok=True)
        write_shares(self.path(ctx.name, epochs_done), ctx.name, ctx.frac_bits, result.config,
                     np.asarray(model_id), shares, layers[0][0].shape[0], epoch=epochs_done)
        for old in self.epochs(ctx.name)[:-self.keep]:
            self.path(ctx.name, old).unlink(missing_ok=True)


@dataclass
class ResumePoint:
    """Where a resumed training starts: the epochs complete, and their weights (None: from the start)."""

    epochs_done: int
    layers: list[tuple[SharedArray, SharedArray]] | None
    model_id: Any = None


async def resume_point(ctx: Context, checkpoints: Checkpoints, cfg: TrainConfig, n_features: int) -> ResumePoint:
    """Agree where to resume: every bank tells every party (public metadata, not data) the last epoch its
    checkpoint files hold; all resume from the latest epoch every bank holds, each from its own file of
    it. The banks then check that their files are of one model (load_shared_weights). Collective."""
    op = ctx.party.new_op("resume")
    party = ctx.party
    banks = ctx.compute_parties
    mine = checkpoints.epochs(ctx.name) if not ctx.is_dealer else []
    if not ctx.is_dealer:
        for peer in party.peers:
            party.send(peer, op, np.array(mine or [-1], dtype=np.int64))
    held = {ctx.name: mine} if not ctx.is_dealer else {}
    for bank in banks:
        if bank != ctx.name:
            got = (await party.recv(bank, op, dtype=np.int64)).array
            held[bank] = [int(e) for e in got if e >= 0]
    common = set.intersection(*(set(v) for v in held.values()))
    arch = cfg.architecture(n_features)
    if not common:
        if any(held.values()):
            raise TrainingError("resume: the banks hold checkpoints of no common epoch ("
                                + "; ".join(f"{b}: {held[b] or 'none'}" for b in banks) + ")")
        return ResumePoint(0, None)
    epoch = max(common)
    loaded = None
    if not ctx.is_dealer:
        path = checkpoints.path(ctx.name, epoch)
        loaded = read_shares(path, ctx.name, arch, ctx.frac_bits)
        if loaded.config != cfg:
            raise TrainingError(f"{path}: a checkpoint of another training ({loaded.config.to_json()}), not "
                                f"of this one ({cfg.to_json()})")
    layers = await load_shared_weights(ctx, arch, loaded, {ctx.name: str(checkpoints.directory)})
    model_id = None if loaded is None else np.frombuffer(bytes.fromhex(loaded.model_id), dtype=">u8").astype(np.uint64)
    return ResumePoint(epoch, layers, model_id)


def weight_limit(f: int) -> float:
    """Largest |weight| at which the products stay far inside the fixed-point range: products are kept at
    2f bits below 2^62 ring units (2^(62 - 2f) in real terms); a weight beyond 2^(62 - 2f) / 2^10 (inputs
    up to 8, fan-in up to 128) could overflow a forward product."""
    return 2.0 ** (62 - 2 * f - 10)


def _count_out_of_range(ctx: Context, result: SharedWeights, f: int) -> SharedArray:
    """How many weights (and biases) lie beyond +-weight_limit: one comparison gate on [w - L, -w - L]."""
    flat = concatenate([p.reshape(-1) for layer in result.layers for p in layer])
    limit = weight_limit(f)
    beyond = ctx.less(0.0, concatenate([flat - limit, -flat - limit]))
    return beyond.sum()


def _step(ctx: Context, layers: list[tuple[SharedArray, SharedArray]], xb: SharedArray, yb: SharedArray,
          cb: SharedArray | None, aug_b: SharedArray | None, cfg: TrainConfig,
          f: int) -> list[tuple[SharedArray, SharedArray]]:
    """One SGD step on a batch; returns the new weights."""
    return _update(ctx, layers, _gradients(ctx, layers, xb, yb, cb, aug_b, f), len(yb), cfg, f)


def _sharded_step(ctx: Context, group: collectives.Shards, layers: list[tuple[SharedArray, SharedArray]],
                  x: SharedArray, y: SharedArray, c: SharedArray | None, x_aug: SharedArray | None,
                  mine: np.ndarray, batch: int, cfg: TrainConfig, f: int) -> list[tuple[SharedArray, SharedArray]]:
    """One data-parallel SGD step: this shard's batch rows `mine` (maybe none), the gradients summed over
    the party's shards, the update on shard 0 only (a truncation is randomised: applied on every shard,
    the shards' weights would drift apart by a unit each step), its result broadcast to the others."""
    shapes = [(w.shape[0] + 1, w.shape[1]) for w, _ in layers]
    if len(mine):
        grads = _gradients(ctx, layers, x[mine], y[mine], None if c is None else c[mine],
                           x_aug[mine] if x_aug is not None else None, f)
    else:  # none of this batch's rows here: this shard adds zero (at the scale of the others' gradients)
        grads = [resolved(ctx, shape, 2 * f, np.zeros(shape, dtype=np.uint64)) for shape in shapes]
    total = group.sum(concatenate([g.reshape(-1) for g in grads]))
    summed, at = [], 0
    for rows, cols in shapes:
        summed.append(total[at:at + rows * cols].reshape(rows, cols))
        at += rows * cols
    new = _update(ctx, layers, summed, batch, cfg, f) if group.root else layers
    flat = group.broadcast(concatenate([p.reshape(-1) for layer in new for p in layer]), root=0)
    out, at = [], 0
    for w, b in layers:
        out.append((flat[at:at + w.size].reshape(w.shape), flat[at + w.size:at + w.size + b.size]))
        at += w.size + b.size
    return out


def _gradients(ctx: Context, layers: list[tuple[SharedArray, SharedArray]], xb: SharedArray, yb: SharedArray,
               cb: SharedArray | None, aug_b: SharedArray | None, f: int) -> list[SharedArray]:
    """The batch's gradients [gW; gb] per layer, at 2f bits, summed over its rows (not yet averaged)."""
    hs, signs = [xb], []
    for w, b in layers[:-1]:
        z = ctx.matmul(hs[-1], w, truncate=False) + b  # at 2f bits
        msb, h = sign_relu_truncate(ctx, z, z.frac_bits - f)
        signs.append(1 - msb)  # relu'(z): the forward's comparison bit
        hs.append(h)
    w_out, b_out = layers[-1]
    # beside the forward pass (off the critical path): the last layer's inputs weighted by c, and W^T by c
    last_in = aug_b if aug_b is not None else _weighted(ctx, hs[-1], cb)
    w_back = None
    if len(layers) > 1:
        w_back = w_out.T if cb is None else ctx.mul(cb[:, None], w_out.T)
    p = _sigmoid(ctx, ctx.matmul(hs[-1], w_out, truncate=False) + b_out)[:, 0]
    err = (p - yb)[:, None]  # (B, 1) at f bits; the class weight is in last_in and w_back
    grads = [ctx.matmul(last_in.T, err, truncate=False)]  # [gW; gb] of the last layer at 2f
    delta_back = None if w_back is None else (ctx.matmul(err, w_back, truncate=False) if cb is None
                                              else ctx.mul(err, w_back, truncate=False))
    for k in range(len(layers) - 2, -1, -1):
        assert delta_back is not None
        delta = bit_trunc(ctx, signs[k], delta_back, delta_back.frac_bits - f)  # relu'(z) * (delta W^T), at f
        grads.append(ctx.matmul(_with_ones(ctx, hs[k]).T, delta, truncate=False))
        delta_back = ctx.matmul(delta, layers[k][0].T, truncate=False) if k else None
    return list(reversed(grads))


def _update(ctx: Context, layers: list[tuple[SharedArray, SharedArray]], grads: list[SharedArray], batch: int,
            cfg: TrainConfig, f: int) -> list[tuple[SharedArray, SharedArray]]:
    """w -= lr / B * g for every layer in ONE division by the public integer 2^(F - f) B / lr (g at F bits):
    the batch mean, the learning rate and the truncation in one round. g = [gW; gb] per layer."""
    flat = concatenate([g.reshape(-1) for g in grads])
    divisor = _update_divisor(cfg, batch, flat.frac_bits, f)
    step = truncation.divide_public(ctx, flat, np.array(divisor, dtype=np.uint64))
    step = step.local(lambda s: s, step.shape, frac=f)
    out, at = [], 0
    for (w, b), g in zip(layers, grads, strict=True):
        rows, cols = g.shape
        part = step[at:at + rows * cols].reshape(rows, cols)
        at += rows * cols
        out.append((w - part[:-1], b - part[-1]))
    return out


def _update_divisor(cfg: TrainConfig, batch: int, grad_frac: int, f: int) -> int:
    """round(2^(F - f) B / lr): dividing a gradient at F bits by it gives lr / B times it at f bits."""
    divisor = int(round(2.0 ** (grad_frac - f) * batch / cfg.learning_rate))
    if divisor < 1 or divisor >= 2**62:
        raise TrainingError(f"training: learning rate {cfg.learning_rate:g} with batch size {batch} is outside the "
                            f"fixed-point range (lr / batch must lie between 2^-{62 - (grad_frac - f)} and 2^{f})")
    return divisor


async def rounds_per_step(result: SharedWeights) -> float | None:
    """Online rounds per SGD step, measured: the depth gained over the last epoch (or, with one epoch,
    since the inputs) divided by its steps. None on the helper."""
    if result.layers[0][0].ctx.is_dealer:
        return None
    per_epoch = steps_per_epoch(result.config, result.rows)
    if len(result.epoch_ends) >= 2:
        gained = await result.epoch_ends[-1].depth() - await result.epoch_ends[-2].depth()
        return gained / per_epoch
    assert result.start is not None
    return (await result.epoch_ends[-1].depth() - await result.start.depth()) / per_epoch


# -- scoring with shared weights --------------------------------------------------------------------

def logits(ctx: Context, layers: Sequence[tuple[SharedArray, SharedArray]], x: SharedArray) -> SharedArray:
    """The score before the sigmoid, at 2f bits, of shared rows x with shared weights (a Beaver product
    per layer and one ReLU-truncation gate per hidden layer)."""
    h = x
    for w, b in layers[:-1]:
        h = ctx.relu(ctx.matmul(h, w, truncate=False) + b)
    w, b = layers[-1]
    return (ctx.matmul(h, w, truncate=False) + b)[:, 0]


def probability_threshold_logit(threshold: float, kind: str) -> float:
    """The logit above which the (hard or logistic) sigmoid exceeds `threshold`."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie strictly between 0 and 1, not {threshold}")
    return 4 * (threshold - 0.5) if kind == "hard" else float(np.log(threshold / (1 - threshold)))


async def check_divergence(result: SharedWeights) -> None:
    """Raise TrainingError if any epoch ended with weights beyond the safe range (a diverging learning
    rate), or if labels were not 0/1. Each epoch opened one bit to both banks, whether any weight left the
    range (0 unless training diverges), and one bit whether any label is not 0 or 1: bits, not counts, so
    neither bank learns how many of the other's labels are bad."""
    bad = await result.not_bits if result.not_bits is not None else None
    if bad is not None and int(bad) > 0:
        raise TrainingError(f"training: labels must be 0 or 1, but some of the {result.rows:,} labels are not "
                            "(the model trained on them is wrong)")
    for epoch, task in enumerate(result.out_of_range):
        count = await task
        if count is not None and int(count) > 0:
            raise TrainingError(f"training diverged: after epoch {epoch + 1}, some weights were beyond "
                                f"+-{weight_limit(_frac(result)):,.0f}; lower the learning rate (now "
                                f"{result.config.learning_rate:g})")


def _frac(result: SharedWeights) -> int:
    return result.layers[0][0].frac_bits


async def open_weights(ctx: Context, result: SharedWeights | Sequence[tuple[SharedArray, SharedArray]],
                       to: Sequence[str] | None = None) -> Weights | None:
    """Open the weights (a policy choice: `--reveal-model`). None on parties not in `to`."""
    layers = result.layers if isinstance(result, SharedWeights) else list(result)
    tasks = [(ctx.reveal(w, to=to), ctx.reveal(b, to=to)) for w, b in layers]
    out = [(await tw, await tb) for tw, tb in tasks]
    return None if out[0][0] is None else [(np.asarray(w), np.asarray(b)) for w, b in out]


# -- model share files ------------------------------------------------------------------------------

def _digest(architecture: str, frac_bits: int, model_id: str, config: str) -> str:
    text = json.dumps({"architecture": architecture, "frac_bits": frac_bits, "model_id": model_id,
                       "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


async def save_shares(ctx: Context, result: SharedWeights, path: str | Path,
                      extra: dict[str, np.ndarray] | None = None) -> str | None:
    """Write this bank's own share of the weights to `path` (.npz, no pickle); the helper writes nothing.
    One share alone is uniformly random. The file carries the architecture, the fixed-point scale, the
    session's model id and a digest of them, which every bank's file of the same model shares. `extra`:
    this bank's own arrays to keep with it (e.g. its feature scaler). Returns the digest (None: helper).
    The file appears whole or not at all (written aside, then renamed)."""
    model_id = await result.model_id if result.model_id is not None else None
    if ctx.is_dealer:
        return None
    layers = [((await w.resolve()).share, (await b.resolve()).share) for w, b in result.layers]
    return write_shares(path, ctx.name, ctx.frac_bits, result.config, np.asarray(model_id), layers,
                        result.layers[0][0].shape[0], extra)


def write_shares(path: str | Path, party: str, frac_bits: int, config: TrainConfig, model_id: np.ndarray,
                 layers: list[tuple[np.ndarray, np.ndarray]], n_features: int,
                 extra: dict[str, np.ndarray] | None = None, epoch: int | None = None) -> str:
    """Write a model share file atomically: to a temporary file beside it, flushed to disk, then renamed
    over `path`; a reader (or a resumed run) sees the previous file or this one, never a part."""
    mid = model_id_text(model_id)
    arch = config.architecture(n_features)
    digest = _digest(arch, frac_bits, mid, config.to_json())
    arrays: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"] = w
        arrays[f"b{i}"] = b
    for key, value in (extra or {}).items():
        arrays[f"extra_{key}"] = np.asarray(value)
    meta = {"format": SHARE_FORMAT, "party": party, "architecture": arch, "frac_bits": frac_bits,
            "model_id": mid, "config": config.to_json(), "digest": digest, "checksum": _checksum(arrays)}
    if epoch is not None:
        meta["epoch"] = epoch
    arrays["meta"] = np.array(json.dumps(meta))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def model_id_text(model_id: np.ndarray) -> str:
    return "".join(f"{int(v) & (2**64 - 1):016x}" for v in np.asarray(model_id).ravel())


@dataclass
class LoadedShares:
    party: str
    architecture: str
    frac_bits: int
    digest: str
    config: TrainConfig
    shares: list[tuple[np.ndarray, np.ndarray]]
    extra: dict[str, np.ndarray]
    epoch: int | None = None  # a training checkpoint: the epochs complete
    model_id: str = ""


def read_shares(path: str | Path, party: str, architecture: str, frac_bits: int) -> LoadedShares:
    """Read and check a model share file: this party's, of the expected architecture and scale, intact."""
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            files = {k: z[k] for k in z.files if k != "meta"}
    except FileNotFoundError:
        raise TrainingError(f"{where}: no such model share file") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a truncated file: EOFError
        raise TrainingError(f"{where}: not a model share file, or a truncated one ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != SHARE_FORMAT:
        raise TrainingError(f"{where}: not a model share file of format {SHARE_FORMAT}")
    cfg_fields = _check_meta(where, meta)
    if meta["party"] != party:
        raise TrainingError(f"{where}: holds {meta['party']}'s share of the model, not {party}'s")
    if meta["architecture"] != architecture:
        raise TrainingError(f"{where}: a model of architecture {meta['architecture']}, but this session "
                            f"expects {architecture}")
    if meta["frac_bits"] != frac_bits:
        raise TrainingError(f"{where}: weights at {meta['frac_bits']} fractional bits, but the topology's "
                            f"frac_bits is {frac_bits}")
    if _digest(meta["architecture"], meta["frac_bits"], meta["model_id"], meta["config"]) != meta["digest"]:
        raise TrainingError(f"{where}: its digest does not match its contents (a damaged or edited file)")
    if meta.get("checksum") != _checksum({k: v for k, v in files.items() if k != "meta"}):
        raise TrainingError(f"{where}: its arrays do not match their checksum (a damaged or edited file)")
    shares = []
    for i, (n_in, n_out, _) in enumerate(parse_architecture(architecture)):
        w, b = files.get(f"w{i}"), files.get(f"b{i}")
        if w is None or b is None or w.shape != (n_in, n_out) or b.shape != (n_out,) or w.dtype != np.uint64:
            raise TrainingError(f"{where}: layer {i} is not a ({n_in}, {n_out}) share of 64-bit ring values")
        shares.append((w, b))
    extra = {k.removeprefix("extra_"): v for k, v in files.items() if k.startswith("extra_")}
    epoch = meta.get("epoch")
    return LoadedShares(party, architecture, frac_bits, meta["digest"], TrainConfig(**cfg_fields), shares, extra,
                        int(epoch) if epoch is not None else None, meta["model_id"])


_META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": int, "party": str, "architecture": str, "frac_bits": int, "model_id": str, "config": str,
    "digest": str, "checksum": str}
_OPTIONAL_META_FIELDS: dict[str, type | tuple[type, ...]] = {"epoch": int}  # a training checkpoint's
_CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "hidden": list, "learning_rate": (int, float), "epochs": int, "batch_size": int, "seed": int,
    "class_weight": (int, float), "check_divergence": bool}


def _check_meta(where: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A share file's metadata checked field by field (TrainingError naming the file and the field, one
    line); returns its training configuration's fields, ready for TrainConfig."""
    _check_fields(where, "meta", meta, _META_FIELDS, _OPTIONAL_META_FIELDS)
    try:
        config = json.loads(meta["config"])
    except ValueError as exc:
        raise TrainingError(f"{where}: meta.config: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise TrainingError(f"{where}: meta.config: expected a JSON object, got {type(config).__name__}")
    _check_fields(where, "meta.config", config, _CONFIG_FIELDS)
    if not all(type(h) is int for h in config["hidden"]):
        raise TrainingError(f"{where}: meta.config.hidden: expected a list of integers, got {config['hidden']!r}")
    return {**config, "hidden": tuple(config["hidden"])}


def _check_fields(where: str, name: str, values: dict[str, Any], fields: dict[str, type | tuple[type, ...]],
                  optional: dict[str, type | tuple[type, ...]] | None = None) -> None:
    known = {**fields, **(optional or {})}
    for key in values:
        if key not in known:
            raise TrainingError(f"{where}: {name}.{key}: not a field of a model share file (fields: "
                                f"{', '.join(known)})")
    for key, kind in known.items():
        if key not in values:
            if key in fields:
                raise TrainingError(f"{where}: {name}.{key}: missing")
            continue
        value = values[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise TrainingError(f"{where}: {name}.{key}: expected {expected}, got {value!r:.60}")


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over this file's own arrays (names, dtypes, shapes, bytes): its share and extras are intact.
    (The digest above is common to every bank's file of one model; this one is the file's own.)"""
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def digest_words(digest: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(digest)[:16], dtype="<u8").copy()


async def load_shared_weights(ctx: Context, architecture: str, loaded: LoadedShares | None,
                              files: dict[str, str] | None = None) -> list[tuple[SharedArray, SharedArray]]:
    """The shared weights from each bank's own share file (the helper passes None: it holds no share).
    The banks first check that their files' digests agree: bank_a's share is its digest, bank_b's the
    negated digest, and the opened sum is zero exactly when they agree (the digests are public metadata,
    not secrets). Collective: 1 round."""
    layers_spec = parse_architecture(architecture)
    if not ctx.is_dealer and loaded is None:
        raise TrainingError(f"{ctx.name}: no model share file")
    mine = np.zeros(2, dtype=np.uint64)
    if loaded is not None and ctx.name in ctx.compute_parties[:2]:
        words = digest_words(loaded.digest)
        mine = words if ctx.name == ctx.compute_parties[0] else np.negative(words)
    diff = await ctx.reveal(resolved(ctx, (2,), 0, mine))
    if diff is not None and np.any(diff != 0):
        names = files or {}
        raise TrainingError("the banks' model share files are not of the same model: "
                            + ", ".join(f"{p}'s {names.get(p, 'file')}" for p in ctx.compute_parties)
                            + " have different digests (each bank must load its own share of one training session)")
    out = []
    for i, (n_in, n_out, _) in enumerate(layers_spec):
        if ctx.is_dealer or loaded is None:
            w = resolved(ctx, (n_in, n_out), ctx.frac_bits, np.zeros((n_in, n_out), np.uint64))
            b = resolved(ctx, (n_out,), ctx.frac_bits, np.zeros(n_out, np.uint64))
        else:
            w = resolved(ctx, (n_in, n_out), ctx.frac_bits, loaded.shares[i][0])
            b = resolved(ctx, (n_out,), ctx.frac_bits, loaded.shares[i][1])
        out.append((w, b))
    return out


ProgressFn = Callable[[int, int], None]


async def follow_epochs(result: SharedWeights, progress: ProgressFn) -> None:
    """Call progress(epochs done, epochs) as each epoch's weights become available (compute parties)."""
    total = len(result.epoch_ends)
    for k, marker in enumerate(result.epoch_ends):
        await marker.resolve()
        progress(k + 1, total)


__all__ = ["Checkpoints", "LoadedShares", "ResumePoint", "SharedWeights", "TrainConfig", "TrainingError",
           "batch_order", "bit_trunc", "check_divergence", "follow_epochs", "initial_weights", "load_shared_weights",
           "logits", "open_weights", "predict_reference", "read_shares", "resume_point", "rounds_per_step",
           "save_shares", "sigmoid_kind", "train", "train_reference", "write_shares"]
