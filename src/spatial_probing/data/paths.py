"""Where the benchmark files live: ``--data-dir``, else ``$SPATIAL_PROBING_DATA``."""

from __future__ import annotations

import os
from pathlib import Path

from spatial_probing.data.errors import DataError

ENV_VAR = "SPATIAL_PROBING_DATA"


def resolve_dataset_dir(data_dir: str | os.PathLike[str] | None, name: str, marker: str) -> Path:
    """Find a dataset's folder: ``DATA_DIR/<name>`` or ``DATA_DIR`` itself when it holds ``marker``.

    Raises a DataError that says where it looked and how to point the tool at the files.
    """
    root = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if root is None:
        raise DataError(f"no data directory for {name!r}: pass --data-dir DIR (holding {name}/) or set "
                        f"${ENV_VAR}; to fetch it run `spatial-probing data download {name} --to DIR`")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory does not exist (expected a folder holding {name}/)", path=root)
    for candidate in (root / name, root):
        if (candidate / marker).exists():
            return candidate
    raise DataError(f"no {name} data here: expected {root / name / marker} (or {root / marker}); "
                    f"fetch it with `spatial-probing data download {name} --to {root}`", path=root)
