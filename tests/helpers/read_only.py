"""A read-only folder that stays read-only when the tests run as root."""
from __future__ import annotations

import os
from pathlib import Path


def read_only(folder: Path, monkeypatch) -> Path:
    """Make ``folder`` read-only; as root (who may write anyway) ``os.access`` is made to
    honour the permission bits, the way it answers any other user."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and Path(path).resolve() == folder.resolve():
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    return folder
