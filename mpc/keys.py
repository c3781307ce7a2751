"""CurveZMQ keys: every party has a keypair; the topology lists every party's public key.

Key files are ZeroMQ certificates (zmq.auth format): NAME.key holds the public key, NAME.key_secret both
keys and is written with mode 0600. On a single host `mpc launch`, `mpc demo` and `run_local` make
ephemeral keys themselves, so links are encrypted and authenticated by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from mpc.config import ConfigError, Topology


@dataclass(frozen=True)
class CurveKeys:
    """What one party needs: every party's public key (z85) and its own secret key."""

    public: dict[str, bytes]
    secret: bytes

    def public_of(self, name: str) -> bytes:
        return self.public[name]


def generate(directory: str | Path, names: list[str]) -> dict[str, tuple[Path, Path]]:
    """Write NAME.key and NAME.key_secret (0600) for each name; return their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        public, secret = zmq.curve_keypair()
        pub_path, sec_path = out / f"{name}.key", out / f"{name}.key_secret"
        pub_path.write_text(_cert(name, public, None))
        fd = os.open(sec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_cert(name, public, secret))
        os.chmod(sec_path, 0o600)
        paths[name] = (pub_path, sec_path)
    return paths


def _cert(name: str, public: bytes, secret: bytes | None) -> str:
    lines = [f"#   ZeroMQ CURVE {'secret' if secret else 'public'} certificate of mpc party {name}",
             "#   Exchange securely, or delete and regenerate with `mpc keys generate`" if not secret else
             "#   THIS FILE IS SECRET: keep it on this party's host only (mode 0600)",
             "metadata", f'    party = "{name}"', "curve", f'    public-key = "{public.decode()}"']
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return "\n".join(lines) + "\n"


def ephemeral(names: list[str]) -> dict[str, CurveKeys]:
    """In-memory keys for every party (one process or one host): each party's view."""
    pairs = {name: zmq.curve_keypair() for name in names}
    public = {name: pub for name, (pub, _) in pairs.items()}
    return {name: CurveKeys(public, sec) for name, (_, sec) in pairs.items()}


def with_ephemeral_keys(topo: Topology, directory: str | Path) -> Topology:
    """A copy of a key-less topology with fresh key files for every party in `directory`."""
    paths = generate(directory, topo.names)
    parties = tuple(p.model_copy(update={"public_key": str(paths[p.name][0]), "secret_key": str(paths[p.name][1])})
                    for p in topo.parties)
    return topo.model_copy(update={"parties": parties})


def load(topo: Topology, me: str, secret_key: str | Path | None = None) -> CurveKeys | None:
    """This party's keys from the topology's key files (None if the topology has no keys)."""
    if all(p.public_key is None for p in topo.parties):
        return None
    public = {}
    for p in topo.parties:
        if p.public_key is None:
            raise ConfigError(f"topology {topo.name!r}", [f"parties ({p.name}).public_key: every party needs a "
                                                           "public key once any has one"])
        public[p.name] = _read(p.public_key, p.name, secret=False)
    path = secret_key or topo.party(me).secret_key
    if path is None:
        raise ConfigError(f"topology {topo.name!r}", [f"parties ({me}).secret_key: {me} needs its secret key file "
                                         "(in the topology, or `mpc run --secret-key PATH`)"])
    secret = _read(path, me, secret=True)
    if zmq.curve_public(secret) != public[me]:
        # Caught here, in one line: otherwise every handshake fails and each party times out blaming a peer.
        raise ConfigError(str(path), [f"this secret key is not {me}'s: its public half is not {me}'s public_key "
                                      f"in the topology ({topo.party(me).public_key}); is it {me}'s own "
                                      ".key_secret file?"])
    return CurveKeys(public, secret)


def _read(path: str | Path, name: str, secret: bool) -> bytes:
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), [f"cannot read the {'secret' if secret else 'public'} key of {name}: {exc}"]
                          ) from None
    if secret:
        if secret_key is None:
            raise ConfigError(str(path), [f"no secret key in this file (is it {name}'s .key_secret file?)"])
        mode = os.stat(path).st_mode & 0o077
        if mode:
            raise ConfigError(str(path), [f"{name}'s secret key file is readable by others (chmod 600 {path})"])
        return secret_key
    return public
