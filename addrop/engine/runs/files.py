"""Files a reader can always parse: files written atomically (temp file, fsync, os.replace), lines appended in one
write, and a tolerant JSON reader that reports problems instead of raising."""
from __future__ import annotations

import dataclasses
import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ...errors import UserError


def _json_default(obj):
    """Make the usual non-JSON values (numpy/torch scalars and arrays, paths, sets, dataclasses) writable."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        try:
            return obj.tolist()
        except Exception:  # pragma: no cover - exotic objects
            pass
    if hasattr(obj, "item"):
        try:
            return obj.item()
        except Exception:  # pragma: no cover
            pass
    return str(obj)


def to_json(obj, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, ensure_ascii=False)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on some systems (Windows); the replace itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_folder(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work, a folder that cannot be made or written: a path through a file, a file where the
    folder should be, no write permission. Missing folders are fine (writers create them); nothing is created."""
    p = Path(path).expanduser()
    if not str(path).strip():
        raise UserError(f"{what} is empty: name a folder")
    probe = p
    while not probe.exists():
        if probe.is_symlink():
            raise UserError(f"{what} {os.fspath(path)!r}: {probe} is a broken symbolic link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == p else f"goes through {probe}, which is a file"
        raise UserError(f"{what} {os.fspath(path)!r} {where}, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {os.fspath(path)!r}: no permission to write in {probe}")
    return p


def check_output_file(path: str | os.PathLike, suffix: str | None = None, what: str = "--out") -> Path:
    """Refuse, before any work, an output file that could not be written at the end: the wrong extension, a
    folder in its place, a parent that is a file or not writable. A missing parent folder is created when the
    file is written (`atomic_replace`)."""
    text = os.fspath(path)
    if suffix and not text.endswith(suffix):
        raise UserError(f"{what} must name a {suffix} file, got {text!r}")
    p = Path(text).expanduser()
    if p.is_dir():
        raise UserError(f"{what} {text!r} is a folder; name a {suffix or ''} file inside it".replace("  ", " "))
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{what} {text!r}: no permission to overwrite it")
    check_folder(p.parent, what=f"{what} {text!r}: the folder")
    return p


@contextmanager
def atomic_replace(path: str | os.PathLike):
    """Yield a temp file's path in `path`'s folder to write; on leaving the block it is fsynced, made readable by
    others (mkstemp makes 0600 files; records are meant to be read) and put onto `path` with ``os.replace``. A
    failure inside the block removes the temp file and leaves `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` onto ``path`` atomically (`atomic_replace`)."""
    with atomic_replace(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, to_json(obj, indent=2) + "\n")


def append_bytes(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # one write in practice; the loop only covers a short write on a full disk or a signal
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


MAX_RECORD_BYTES = 64 * 1024 * 1024  # a run record file larger than this is not read
MAX_JSON_DEPTH = 64  # records are a few levels deep; deeper nesting is refused, not walked


class NotAFile(OSError):
    """A path under the runs folder that is not a plain file of its own: a symbolic link, a FIFO, a device."""


def read_regular(path: str | os.PathLike, max_bytes: int = MAX_RECORD_BYTES) -> bytes:
    """The bytes of a plain file, read without following a symbolic link and without blocking: the one way run
    records are read. A link (even to a file inside the runs folder), a FIFO, a socket or a device raises
    NotAFile before any byte is read, so nothing outside the runs folder is read and a reader never hangs; a
    missing file raises FileNotFoundError; one over `max_bytes` raises NotAFile."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    if os.path.islink(path):
        raise NotAFile(f"{os.fspath(path)} is a symbolic link")
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        if os.path.islink(path) or e.errno in (40,):  # ELOOP: O_NOFOLLOW met a link
            raise NotAFile(f"{os.fspath(path)} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile(f"{os.fspath(path)} is not a plain file")
        if st.st_size > max_bytes:
            raise NotAFile(f"{os.fspath(path)} is {st.st_size} bytes, over the {max_bytes} bytes read")
        chunks, left = [], max_bytes + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise NotAFile(f"{os.fspath(path)} grew over the {max_bytes} bytes read")
        return data
    finally:
        os.close(fd)


def is_plain_file(path: str | os.PathLike) -> bool:
    """A regular file that is not a symbolic link (what the readers of run folders read)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def json_depth_ok(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests at most `limit` levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


def parse_json(raw: bytes | str):
    """json.loads with the nesting bounded: ValueError for bad JSON and for nesting over MAX_JSON_DEPTH."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not json_depth_ok(value):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def read_json(path: Path):
    """(value, error): error is None when the file parsed, 'missing' when absent, else a short reason. Only a
    plain file is read (`read_regular`): a symbolic link, a FIFO or an oversized file is a reason, not a read."""
    try:
        text = read_regular(path).decode("utf-8")
    except FileNotFoundError:
        return None, "missing"
    except NotAFile as e:
        return None, f"{path.name} not read: {str(e).replace(os.fspath(path), 'it')}"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path.name} unreadable ({type(e).__name__})"
    try:
        return parse_json(text), None
    except json.JSONDecodeError as e:
        return None, f"{path.name} is not valid JSON ({e.msg} at line {e.lineno})"
    except ValueError as e:
        return None, f"{path.name} is not usable JSON ({e})"
