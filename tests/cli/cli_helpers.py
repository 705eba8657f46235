"""Helpers of the command-line tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_digest(*paths: Path) -> str:
    """Hash of names, sizes and contents of every file under ``paths`` (to prove nothing was touched)."""
    h = hashlib.sha1()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if f.name.endswith("-lock"):
                continue  # LMDB's reader table
            h.update(str(f).encode())
            h.update(f.read_bytes())
    return h.hexdigest()
