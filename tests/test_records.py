"""Records that cross a process boundary: what a party prints is what the launcher reads."""

from __future__ import annotations

import pytest

from mpc.records import PartyRecord
from mpc.settings import Comparison
from mpc.transport import PeerAborted
from parties.commands.run import failure_record as _failure_record


def test_a_party_summary_round_trips() -> None:
    record = PartyRecord("bank_a", "compute", result={"flags": [1, 0]},
                         counters={"rounds": 5, "bytes_sent": 1234, "wall_s": 0.5, "session_id": "ab"})
    line = record.to_json()
    assert PartyRecord.from_json(line) == record
    # the keys `mpc launch --json` documents stay flat
    assert {"name", "role", "rounds", "bytes_sent", "wall_s", "result"} <= set(record.to_dict())


def test_a_failure_round_trips_with_its_cause() -> None:
    record = _failure_record("bank_a", "compute", PeerAborted("bank_b", "bank_b aborted: ..."))
    back = PartyRecord.from_json(record.to_json())
    assert back == record and not back.ok and back.cause == "bank_b" and back.error_class == "PeerAborted"


@pytest.mark.parametrize("line", ["[1, 2]", '{"role": "compute"}', '{"name": 3, "role": "x"}', "not json"])
def test_anything_else_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        PartyRecord.from_json(line)


def test_the_comparison_choices_come_from_the_enum() -> None:
    from parties.commands.demo import fraud

    method = next(p for p in fraud.params if p.name == "method")
    assert list(method.type.choices) == [c.value for c in Comparison]  # type: ignore[attr-defined]
