"""Programs that exercise the mesh itself: every link, and a chain of dependent rounds."""

from __future__ import annotations

import hashlib
import secrets

import numpy as np

from mpc.runtime import Party


async def mesh(party: Party, size: int = 1024) -> dict[str, object]:
    """Every party sends a fresh random array and its digest to every other and checks what it gets.

    One round: all sends happen before any receive.
    """
    op = party.new_op("mesh")
    mine = np.frombuffer(secrets.token_bytes(8 * size), dtype=np.uint64)
    digest = np.frombuffer(hashlib.sha256(mine.tobytes()).digest(), dtype=np.uint8)
    for peer in party.peers:
        party.send(peer, op, mine, step=0)
        party.send(peer, op, digest, step=1)
    checked = []
    for peer in party.peers:
        data = await party.recv(peer, op, step=0, dtype=np.uint64, shape=(size,))
        claimed = await party.recv(peer, op, step=1, dtype=np.uint8, shape=(32,))
        if hashlib.sha256(data.array.tobytes()).digest() != claimed.array.tobytes():
            raise ValueError(f"{party.name}: array from {peer} does not match its digest")
        checked.append(peer)
    return {"checked": checked, "elements": size}


async def pingpong(party: Party, steps: int = 10) -> dict[str, object]:
    """A token passed around the ring of all parties `steps` times: exactly `steps` dependent rounds.

    Step k goes from party k mod n to party (k + 1) mod n; each hop adds one to the token.
    """
    names = party.topology.names
    n = len(names)
    op = party.new_op("pingpong")
    token = np.zeros(1, dtype=np.uint64)
    depth = 0
    for k in range(steps):
        src, dst = names[k % n], names[(k + 1) % n]
        if party.name == src:
            party.send(dst, op, token + np.uint64(1), step=k, depth=depth)
        elif party.name == dst:
            msg = await party.recv(src, op, step=k, dtype=np.uint64, shape=(1,))
            token, depth = msg.array.copy(), max(depth, msg.depth)
    return {"steps": steps, "depth": depth, "token": int(token[0])}


async def crash(party: Party, who: str = "", after_s: float = 0.0) -> dict[str, object]:
    """Rehearse a failure: party `who` raises after `after_s` seconds; the others wait on it.

    Shows what a failure looks like to every party: the named party's error, the others' abort.
    """
    import asyncio

    if who not in party.topology.names:
        raise ValueError(f"crash: -p who=NAME must name a party ({', '.join(party.topology.names)})")
    op = party.new_op("crash")
    if party.name == who:
        await asyncio.sleep(after_s)
        raise RuntimeError(f"{who} crashed on purpose (program 'crash')")
    await party.recv(who, op)
    return {}
