"""Records that cross a process boundary as JSON, typed on both sides.

A party process (`mpc run --json`) prints one `PartyRecord` line on stdout; the launcher, `mpc bench` and
the demo read it back. One class writes and reads the line, so both sides agree on its keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartyRecord:
    """What one party reports: its counters and the program's result, or why it failed.

    `cause` is the peer the failure names (None: the party's own error). `counters` holds the runtime's
    summary (`rounds`, `messages`, `bytes_sent`, ..., `wall_s`, `session_id`), flat in the JSON."""

    name: str
    role: str
    ok: bool = True
    result: Any = None
    counters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_class: str | None = None
    cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: a success flat with its counters and result; a failure with its error."""
        if self.ok:
            return {"role": self.role, **self.counters, "name": self.name, "result": self.result}
        return {"name": self.name, "role": self.role, "ok": False, "error_class": self.error_class,
                "error": self.error, "cause": self.cause}

    def to_json(self, default: Callable[[Any], Any] | None = None) -> str:
        return json.dumps(self.to_dict(), default=default)

    @classmethod
    def from_json(cls, line: str) -> PartyRecord:
        """Parse one line; ValueError if it is not a party's record."""
        data = json.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(
                data.get("role"), str):
            raise ValueError("not a party record: a JSON object with 'name' and 'role' expected")
        if data.get("ok", True) is False:
            cause = data.get("cause")
            return cls(data["name"], data["role"], ok=False, error=str(data.get("error")),
                       error_class=str(data.get("error_class")), cause=cause if isinstance(cause, str) else None)
        counters = {k: v for k, v in data.items() if k not in ("name", "role", "ok", "result")}
        return cls(data["name"], data["role"], result=data.get("result"), counters=counters)
