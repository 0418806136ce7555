"""Size on disk and deletion of run folders (the Runs page). Neither ever leaves the runs folder: sizes count
regular files only (symbolic links are not followed) and a folder is deleted only if it lies inside the root."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ...errors import UserError
from .reader import load_run


def disk_size(path: str | os.PathLike) -> int:
    """Bytes of the regular files under `path` (links not followed)."""
    total = 0
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(folder, name)):
                total += st.st_size
    return total


def delete_run(root: str | os.PathLike, path: str | os.PathLike) -> None:
    """Delete a run or group folder under `root`; refuses the root itself, anything outside it, and runs that are
    still running."""
    root_r = Path(root).resolve()
    target = Path(path)
    if target.is_symlink():
        raise UserError(f"{target} is a symbolic link; only run folders are deleted")
    target_r = target.resolve()
    if target_r == root_r or root_r not in target_r.parents:
        raise UserError(f"{target} is not a run folder inside {root}")
    if not target_r.is_dir():
        raise UserError(f"{target} does not exist")
    for folder in [target_r, *[p for p in target_r.rglob("*") if p.is_dir() and not p.is_symlink()]]:
        if (folder / "status.json").is_file() and load_run(folder).status == "running":
            raise UserError(f"{folder.name} is still running: stop it first")
    shutil.rmtree(target_r)
