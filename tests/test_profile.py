"""The online-time profile (mpc/profile.py) and `mpc bench --profile` with the parties as processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpc.profile import Profile, since

ROOT = Path(__file__).resolve().parent.parent


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_sections_are_exclusive() -> None:
    """A nested section's time is taken out of the enclosing one; the window's rest is overhead."""
    prof = Profile()
    prof.enabled = True
    before = prof.snapshot()
    with prof.section("compute"):
        _spin(0.02)
        with prof.section("transport"):
            _spin(0.03)
        _spin(0.01)
    _spin(0.02)
    split = since(before, prof.snapshot())
    assert split["transport"] >= 0.03
    assert 0.03 <= split["compute"] < split["wall"] - split["transport"]
    assert split["overhead"] >= 0.02
    total = split["compute"] + split["transport"] + split["idle"] + split["overhead"]
    assert total == pytest.approx(split["wall"])


def test_disabled_profile_records_nothing() -> None:
    prof = Profile()
    with prof.section("compute"):
        _spin(0.005)
    assert prof.totals["compute"] == 0.0


def test_timed_coroutine_and_idle_selector() -> None:
    """Each step of a timed coroutine counts as compute; the loop's wait in its selector as idle."""
    from mpc import profile

    async def body() -> int:
        _spin(0.02)
        await asyncio.sleep(0.05)  # the loop sleeps in its selector meanwhile
        _spin(0.02)
        return 7

    async def main() -> tuple[int, dict[str, float]]:
        old = profile.PROFILE
        profile.PROFILE = prof = Profile()
        try:
            prof.enable()
            before = prof.snapshot()
            value = await profile.timed(body())
            return value, since(before, prof.snapshot())
        finally:
            profile.PROFILE = old

    value, split = asyncio.run(main())
    assert value == 7
    assert split["compute"] >= 0.04
    assert split["idle"] >= 0.03  # the timer may wake up a little early and spin the loop once more


def test_timed_coroutine_passes_errors_in_and_out() -> None:
    from mpc import profile

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("boom")

    async def main() -> None:
        with pytest.raises(KeyError):
            await profile.timed(fails())
        assert not profile.PROFILE._stack  # every section entered was left

    asyncio.run(main())


def test_bench_profile_with_parties_as_processes() -> None:
    res = subprocess.run([sys.executable, "-m", "parties", "bench", "--op", "mul,lt", "--method", "bits", "--n",
                          "20000", "--repeat", "2", "--profile", "--json"],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    records = {r["op"]: r for r in json.loads(res.stdout)}
    for op in ("mul", "lt"):
        prof = records[op]["profile"]
        assert set(prof["parties"]) == {"bank_a", "bank_b"}
        for split in prof["parties"].values():
            assert split["wall"] > 0 and split["compute"] > 0 and split["transport"] > 0
            parts = split["compute"] + split["transport"] + split["idle"] + split["overhead"]
            assert parts == pytest.approx(split["wall"])
        assert prof["link"]["throughput_Bps"] > 0 and prof["link"]["round_s"] > 0
        assert 0 < prof["wire_floor_s"] < prof["floor_s"]
        assert prof["plain_s"] > 0
    assert records["lt"]["rounds"] == 8
