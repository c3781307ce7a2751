"""MkDocs hook: the site's navigation, in a fixed order for the pages it knows and, after them, any other
page in docs/ (so that a new page appears without editing mkdocs.yml; its title comes from its heading)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ORDER = [
    ("Home", "index.md"),
    ("Your own programs", "programs.md"),
    ("Models", "models.md"),
    ("Training on shares", "training.md"),
    ("The fraud demo", "fraud-demo.md"),
    ("Analytics", "analytics.md"),
    ("Serving", "serve.md"),
    ("Command line", "cli.md"),
    ("Topologies", "topology.md"),
    ("Deployment and failures", "deployment.md"),
    ("Protocols", "protocols.md"),
    ("Performance", "performance.md"),
    ("Memory", "memory.md"),
    ("Sharding", "sharding.md"),
    ("Benchmarks", "benchmarks.md"),
    ("Architecture", "ARCHITECTURE.md"),
    ("API reference", "api.md"),
]


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    known = {name for _, name in ORDER}
    nav: list[Any] = [{title: name} for title, name in ORDER if (docs / name).is_file()]
    nav += sorted(p.name for p in docs.glob("*.md") if p.name not in known)
    config["nav"] = nav
    return config
