"""The worker pool (mpc/workers.py): ranges, shared output, errors, and stopping: queued work never starts,
a job under way is not waited for, and closed workers are gone. Every process here is a pool's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mpc.workers import WorkerPool, split

# -- work run in the workers (module-level: they import this module to run it) ------------------------------

def write_range(out: np.ndarray, n: int, lo: int, hi: int, values: np.ndarray, scale: int) -> None:
    """Items lo:hi into two level-major rows of `out`, as DCF keys' words are laid out."""
    rows = out.reshape(2, n)
    rows[0, lo:hi] = values * np.uint64(scale)
    rows[1, lo:hi] = np.arange(lo, hi, dtype=np.uint64)


def fail_range(out: np.ndarray, n: int, lo: int, hi: int) -> None:
    raise ValueError(f"no keys for {lo}:{hi}")


def sleep_range(out: np.ndarray, n: int, lo: int, hi: int, marker: str) -> None:
    """Say it has started (a file), then work for far longer than any test waits."""
    Path(f"{marker}.{lo}").touch()
    time.sleep(60)


def exit_range(out: np.ndarray, n: int, lo: int, hi: int) -> None:
    import os

    if lo > 0:
        os._exit(3)


# -- tests -----------------------------------------------------------------------------------------------------

@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2, "test").start()
    try:
        yield workers
    finally:
        workers.close()


def test_split_covers_in_aligned_contiguous_ranges() -> None:
    assert split(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split(20_000, 2, align=8192) == [(0, 8192), (8192, 20_000)]
    assert split(100, 4, align=8192) == [(0, 100)]  # one block: one worker
    assert split(0, 2) == []


def test_each_worker_writes_its_range_into_shared_memory(pool: WorkerPool) -> None:
    """Jobs of several sizes: the arena grows for a larger one and is reused for a smaller one (whose words
    the workers overwrite); each result is the caller's own array."""
    assert pool.wait_ready() < 30
    results = []
    for n, scale in [(1001, 3), (5000, 5), (7, 2)]:
        values = np.arange(n, dtype=np.uint64)
        out = pool.fill(write_range, n, 2 * n, [values], (scale,), align=100)
        np.testing.assert_array_equal(out.reshape(2, n), [scale * values, np.arange(n)])
        results.append(out)
    assert results[0].reshape(2, 1001)[0, 1000] == 3000  # not overwritten by the later jobs
    assert all(r.flags.owndata and r.flags.writeable for r in results)


def test_a_workers_error_is_raised_and_the_pool_goes_on(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="no keys for 0:5"):
        pool.fill(fail_range, 10, 10, [])
    out = pool.fill(write_range, 4, 8, [np.ones(4, dtype=np.uint64)], (1,))
    assert out[:4].tolist() == [1, 1, 1, 1]


def test_a_worker_that_dies_is_named(pool: WorkerPool) -> None:
    with pytest.raises(RuntimeError, match=r"a worker process died: test-worker-1 \(exit code 3\)"):
        pool.fill(exit_range, 10, 10, [])


def test_after_the_run_stopped_queued_work_never_starts(tmp_path: Path) -> None:
    stopped = threading.Event()

    def check() -> None:
        if stopped.is_set():
            raise InterruptedError("stopped")

    workers = WorkerPool(2, "test", check).start()
    try:
        stopped.set()
        with pytest.raises(InterruptedError):
            workers.fill(sleep_range, 10, 10, [], (str(tmp_path / "started"),))
        workers.wait_ready()  # the workers are up and idle: nothing was handed to them
        assert not list(tmp_path.iterdir())
    finally:
        workers.close()


def _sleeping_job(workers: WorkerPool, tmp_path: Path) -> tuple[threading.Thread, list[BaseException]]:
    """A job sleeping in both workers, run from a thread (as the helper's dealing runs off its loop); returns
    once both workers have started their part (readiness, not time) and the errors the job raises."""
    errors: list[BaseException] = []

    def job() -> None:
        try:
            workers.fill(sleep_range, 10, 10, [], (str(tmp_path / "started"),))
        except BaseException as exc:  # noqa: BLE001 - checked by the caller
            errors.append(exc)

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while len(list(tmp_path.iterdir())) < 2:
            assert time.monotonic() < deadline, "the workers never started the job"
            time.sleep(0.01)
    except BaseException:
        workers.close()
        thread.join()
        raise
    return thread, errors


def test_a_stop_during_a_job_is_not_waited_for_and_close_ends_the_workers(tmp_path: Path) -> None:
    """The job sleeps for a minute in both workers: the caller stops waiting within a poll of the stop
    signal, and close() leaves no worker alive, within the 2 s a party has to stop."""
    stopped = threading.Event()

    def check() -> None:
        if stopped.is_set():
            raise InterruptedError("stopped")

    workers = WorkerPool(2, "test", check).start()
    thread, errors = _sleeping_job(workers, tmp_path)
    try:
        t0 = time.monotonic()
        stopped.set()
        thread.join(2.0)
        assert not thread.is_alive() and isinstance(errors[0], InterruptedError)
        workers.close()
        assert time.monotonic() - t0 < 2.0
        assert workers.pids and not workers.alive
    finally:
        workers.close()
        thread.join()


def test_close_during_a_job_ends_the_wait_at_once(tmp_path: Path) -> None:
    """close() from another thread (the event loop's, as the run stops) while a job waits on the workers."""
    workers = WorkerPool(2, "test").start()
    thread, errors = _sleeping_job(workers, tmp_path)
    try:
        t0 = time.monotonic()
        workers.close()
        thread.join(2.0)
        assert not thread.is_alive() and time.monotonic() - t0 < 2.0
        assert "closed during a job" in str(errors[0])
        assert not workers.alive
    finally:
        workers.close()
        thread.join()


def test_one_worker_is_no_pool() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        WorkerPool(1)


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path: Path) -> None:
    """Workers are fresh interpreters: a user's script that calls run_local at module level (as the README's
    examples do) runs once, not once more in every worker (multiprocessing's spawn would re-run it)."""
    import subprocess
    import sys

    script = tmp_path / "my_program.py"
    script.write_text(
        "import numpy as np\n"
        "from mpc import localhost_topology\n"
        "from protocols import run_local\n"
        "async def program(ctx):\n"
        "    x = await ctx.input('bank_a', np.array([1.0, -2.0, 3.0]) if ctx.name == 'bank_a' else None)\n"
        "    return await ctx.reveal(ctx.relu(x, 'dcf'))\n"
        "out = run_local(localhost_topology(2, dealer_workers=2), program)\n"
        "print('RESULT', out['bank_a'].value.tolist())\n")
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("RESULT") == 1 and "RESULT [1.0, 0.0, 3.0]" in res.stdout
