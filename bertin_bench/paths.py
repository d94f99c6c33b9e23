"""Where the local data lives.

One setting for every command and test: ``--data-dir`` on the CLI, else the ``BERTIN_DATA_DIR``
environment variable, else ``../shared/data`` (relative to the working directory, then to the
repository) when it exists. Users with Hub access do not need it at all: every dataset and model
also has its Hub id.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BERTIN_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_CANDIDATES = (Path("../shared/data"), _REPO_ROOT.parent / "shared" / "data")

_override: Path | None = None


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Set the data directory for this process (the CLI's ``--data-dir``)."""
    global _override
    _override = Path(path).expanduser().resolve() if path else None


def data_dir(required: bool = False) -> Path | None:
    """The local data directory, or None when none is configured and none of the defaults exists.

    With ``required=True`` a missing directory is an error that says how to configure it.
    """
    if _override is not None:
        candidate = _override
    elif os.environ.get(ENV_VAR):
        candidate = Path(os.environ[ENV_VAR]).expanduser().resolve()
    else:
        candidate = next((p.resolve() for p in _CANDIDATES if p.is_dir()), None)
    if candidate is not None and not candidate.is_dir():
        raise FileNotFoundError(
            f"data directory {candidate} does not exist (set by --data-dir or ${ENV_VAR})"
        )
    if candidate is None and required:
        raise FileNotFoundError(
            "no local data directory: pass --data-dir DIR or set "
            f"${ENV_VAR}; defaults tried: {', '.join(str(p) for p in _CANDIDATES)}"
        )
    return candidate


def data_path(*parts: str, required: bool = True) -> Path | None:
    """A path inside the data directory; with ``required`` a missing file is a clear error."""
    root = data_dir(required=required)
    if root is None:
        return None
    path = root.joinpath(*parts)
    if required and not path.exists():
        raise FileNotFoundError(f"{path} not found in the data directory {root}")
    return path


DATA_PREFIX = "data:"


def resolve(spec: str | os.PathLike) -> Path:
    """A path in configs: ``data:sub/dir`` is inside the local data directory (so presets stay
    portable between machines); anything else is a plain path."""
    spec = os.fspath(spec)
    if spec.startswith(DATA_PREFIX):
        return data_path(spec[len(DATA_PREFIX):])
    return Path(spec).expanduser()


def resolve_spec(spec: str) -> str:
    """Like :func:`resolve` for ``data:`` references, but any other spec (a path, a glob, an
    ``hf://`` URL) is returned exactly as given: ``Path()`` would mangle a URL."""
    return str(resolve(spec)) if spec.startswith(DATA_PREFIX) else spec
