"""Durable file writes: after a crash or power cut a file holds its old content or its new one, never a mix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def fsync_dir(path: Path) -> None:
    """Make a rename or a new name in ``path`` survive a power cut (the file's bytes alone do not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``data``: a temp file in the same dir, fsync, ``os.replace``, fsync the dir."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
