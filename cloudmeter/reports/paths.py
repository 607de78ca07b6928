"""Files the reports write: refuse a path that cannot be written before any work, naming the OS's reason."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cloudmeter.errors import ConfigError


def check_writable(path: Path, what: str) -> None:
    """Raise a ConfigError naming ``what`` (chart, export), ``path`` and the OS error unless it can be written."""
    parent = path.parent
    if not parent.is_dir():
        code = errno.ENOTDIR if parent.exists() else errno.ENOENT
    elif path.is_dir():
        code = errno.EISDIR
    elif not os.access(parent, os.W_OK):
        code = errno.EACCES
    else:
        return
    raise unwritable(path, what, os.strerror(code))


def unwritable(path: Path, what: str, reason: str) -> ConfigError:
    """The error for ``path`` that could not be written (``reason``: the OS's words)."""
    return ConfigError(f"cannot write {what} {path}: {reason}")
