"""Atomic, no-clobber output files for every geofm writer (private module, public names).

Every file geofm writes (``geofm.geo``'s rasters and indexes, ``geofm.hub``'s
model folders, ``geofm.lora``'s adapter files) goes through this module, so
that no run can lose the user's data:

- **Refuse an output that is an input.** :func:`check_output` compares the
  output with every input by ``realpath`` and by ``(st_dev, st_ino)``, so the
  same path, ``a/../a.tif``, a symbolic link and a hard link are all caught,
  with or without ``overwrite``.
- **Atomic.** Data goes to a temporary file in the destination's folder (so the
  final rename never crosses file systems), which is flushed to disk
  (``fsync``) and renamed over the destination only when complete: a crash or a
  kill leaves the previous file, or nothing, never a partial file.
- **No clobbering at the last moment.** Without ``overwrite`` the final rename
  does not replace: Linux's ``renameat2(RENAME_NOREPLACE)`` where available,
  else ``link`` + ``unlink``, else an exclusively created placeholder
  (``O_CREAT | O_EXCL``) replaced by the data. A destination created by someone
  else while this run was writing is kept, and this run fails with
  :class:`FileExistsError`. With ``overwrite`` the rename is POSIX ``rename``,
  which replaces atomically.
- **Recognisable temporary names, cleaned up.** A temporary file or folder is
  named ``.<destination name>.<host>.<pid>.<token>.geofm-partial`` (plus a
  suffix such as ``.rank1`` for the part files of a distributed run). A run
  that is killed leaves one behind; the next geofm writer into the same folder
  removes those whose process is gone (same host, pid no longer alive) and
  never touches a live run's files or files it did not name.
- **Normal permissions.** The temporary file is created with mode ``0o666``
  filtered by the process's umask (not ``mkstemp``'s ``0o600``), given that
  mode again before the rename (a writer such as safetensors may have
  recreated it as ``0o600``), and the rename keeps it.

The no-replace rename follows the ``rename(2)`` manual (``RENAME_NOREPLACE``,
Linux 3.15) and the classic ``link``/``unlink`` idiom for exclusive
publication on POSIX file systems.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

PathLike = str | os.PathLike[str]

__all__ = [
    "TEMP_SUFFIX",
    "atomic_output",
    "check_output",
    "commit",
    "create_temp",
    "create_temp_dir",
    "remove_path",
    "remove_stale_temps",
    "same_file",
]

TEMP_SUFFIX = ".geofm-partial"
"""Last part of every temporary name geofm.geo writes (before an optional ``.rankN``)."""

_NAME_MAX = 255  # bytes in one path component on the common Linux/macOS file systems
_TEMP_RE = re.compile(
    r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.(?P<token>[0-9a-f]{8})"
    + re.escape(TEMP_SUFFIX)
    + r"(?P<extra>\.rank[0-9]+)?$"
)
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _host_tag() -> str:
    """This machine's name, reduced to ``[A-Za-z0-9-]`` (at most 32 characters)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def _fit_name(name: str, room: int) -> str:
    """``name`` cut to at most ``room`` bytes of UTF-8 (whole characters)."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= room:
        return name
    return encoded[:room].decode("utf-8", "ignore") or "out"


def _temp_path(dst: Path) -> Path:
    tail = f".{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    room = _NAME_MAX - len(tail.encode()) - 1 - len(".rank9999")  # leave room for a part suffix
    return dst.with_name(f".{_fit_name(dst.name, room)}{tail}")


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (conservatively ``True`` if unsure)."""
    if os.name != "posix" or pid <= 0:
        return True  # Windows' os.kill(pid, 0) would send CTRL_C_EVENT: never probe there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened or synced."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with suppress(OSError):  # some file systems (e.g. some FUSE) refuse fsync on folders
            os.fsync(fd)
    finally:
        os.close(fd)


def _renameat2_noreplace(src: Path, dst: Path) -> bool:
    """``renameat2(src, dst, RENAME_NOREPLACE)``; ``False`` where the kernel or libc lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl without it
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        raise FileExistsError(code, os.strerror(code), str(dst))
    if code in {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}:
        return False  # this file system cannot do it: use the next method
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def _link_noreplace(src: Path, dst: Path) -> bool:
    """Publish ``src`` as ``dst`` by ``link`` + ``unlink``; ``False`` where links are refused."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno in {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}:
            return False
        raise
    os.unlink(src)
    return True


def _placeholder_noreplace(src: Path, dst: Path) -> None:
    """Last resort: claim ``dst`` exclusively with an empty file, then replace it by ``src``."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    os.replace(src, dst)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (same path, ``..``, symlink or hard link).

    Args:
        a: A path.
        b: Another path.

    Returns:
        ``True`` when both exist and share ``(st_dev, st_ino)``, or when their
        ``realpath`` is equal.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> (folder / "a.tif").write_bytes(b"x")
        1
        >>> same_file(folder / "a.tif", folder / "sub" / ".." / "a.tif"), same_file(
        ...     folder / "a.tif", folder / "b.tif")
        (True, False)
    """
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def remove_path(path: Path) -> None:
    """Remove a file, or a temporary folder tree of geofm's; nothing if it is already gone.

    A folder is removed only if its name ends with :data:`TEMP_SUFFIX`: a
    guard against ever deleting a user's folder (an empty path, for one,
    names the working folder).

    Raises:
        ValueError: If ``path`` is a folder not named like geofm's temporaries.
    """
    if path.is_dir() and not path.is_symlink():
        if not path.name.endswith(TEMP_SUFFIX):
            raise ValueError(
                f"geofm removes only its own temporary folders (*{TEMP_SUFFIX}), not '{path}'."
            )
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove geofm's temporary files and folders in ``folder`` left by dead processes.

    Only names of the form ``.<name>.<host>.<pid>.<token>.geofm-partial[.rankN]``
    whose ``<host>`` is this machine and whose ``<pid>`` is no longer alive are
    removed: a live run's files, another machine's (on a shared file system)
    and any other file are left alone.

    Args:
        folder: The folder to clean.

    Returns:
        The removed paths.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> live = create_temp(folder / "out.tif")  # this process is alive: kept
        >>> remove_stale_temps(folder), live.exists()
        ([], True)
    """
    removed: list[Path] = []
    host = _host_tag()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        remove_path(path)
        removed.append(path)
    return removed


def check_output(
    dst: PathLike, *, inputs: Iterable[PathLike] = (), overwrite: bool, caller: str
) -> Path:
    """Validate an output path before any work, and clean stale temporaries beside it.

    Args:
        dst: The output file.
        inputs: Files the run reads; ``dst`` may be none of them.
        overwrite: Whether an existing ``dst`` may be replaced.
        caller: Public function name, for messages (``geofm.geo.<caller>``).

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: If ``dst``'s folder does not exist.
        IsADirectoryError: If ``dst`` is a folder.
        ValueError: If ``dst`` is one of ``inputs`` (same path, ``..``, symlink or
            hard link), whatever ``overwrite`` says.
        FileExistsError: If ``dst`` exists and ``overwrite`` is false.

    Example:
        >>> import tempfile, pathlib
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "scene.tif"
        >>> _ = src.write_bytes(b"pixels")
        >>> check_output(src.parent / "map.tif", inputs=[src], overwrite=False, caller="f").name
        'map.tif'
        >>> check_output(src, inputs=[src], overwrite=True, caller="f")
        Traceback (most recent call last):
        ...
        ValueError: Output '...scene.tif' of geofm.geo.f is its input '...scene.tif' ...
    """
    path = Path(dst)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Output folder '{folder}' of geofm.geo.{caller} does not exist. Create it first."
        )
    if path.is_dir():
        raise IsADirectoryError(
            f"Output '{path}' of geofm.geo.{caller} is a folder; pass a file name inside it."
        )
    for src in inputs:
        if same_file(path, src):
            raise ValueError(
                f"Output '{path}' of geofm.geo.{caller} is its input '{src}' (the same file, "
                "possibly through '..', a symbolic link or a hard link); writing it would "
                "destroy the input. Choose another output path."
            )
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"Output '{path}' of geofm.geo.{caller} already exists. "
            "Pass overwrite=True to replace it."
        )
    remove_stale_temps(folder)
    return path


def create_temp(dst: Path) -> Path:
    """Create an empty temporary file beside ``dst`` (mode ``0o666`` less the umask).

    Args:
        dst: The final output path.

    Returns:
        The temporary file's path (recognisable by :func:`remove_stale_temps`).

    Example:
        >>> import tempfile, pathlib
        >>> tmp = create_temp(pathlib.Path(tempfile.mkdtemp()) / "out.tif")
        >>> tmp.name.startswith(".out.tif.") and tmp.name.endswith(TEMP_SUFFIX)
        True
    """
    while True:
        tmp = _temp_path(dst)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # a 32-bit token collided: draw another
            continue
        os.close(fd)
        return tmp


def create_temp_dir(dst: Path) -> Path:
    """Create an empty temporary folder beside ``dst`` (for outputs made of several files).

    Args:
        dst: A path in an existing folder, naming what the contents are for.

    Returns:
        The folder's path (recognisable by :func:`remove_stale_temps`).

    Raises:
        FileNotFoundError: If ``dst``'s folder does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> create_temp_dir(pathlib.Path(tempfile.mkdtemp()) / "tiles").is_dir()
        True
    """
    while True:
        tmp = _temp_path(dst)
        try:
            tmp.mkdir(mode=0o777)
        except FileExistsError:  # a 32-bit token collided: draw another
            continue
        return tmp


def commit(tmp: Path, dst: Path, *, overwrite: bool, caller: str) -> None:
    """Flush ``tmp`` to disk and rename it to ``dst``, replacing only if ``overwrite``.

    Args:
        tmp: The complete temporary file, in ``dst``'s folder.
        dst: The final path.
        overwrite: Replace an existing ``dst`` (atomically); otherwise fail if
            ``dst`` exists now, even if it did not when the run started.
        caller: Public function name, for messages.

    Raises:
        FileExistsError: If ``overwrite`` is false and ``dst`` exists at the
            rename (``tmp`` is left for the caller to remove).

    Example:
        >>> import tempfile, pathlib
        >>> dst = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> tmp = create_temp(dst)
        >>> _ = tmp.write_text("done")
        >>> commit(tmp, dst, overwrite=False, caller="f")
        >>> dst.read_text(), tmp.exists()
        ('done', False)
    """
    if tmp.is_file() and not tmp.is_symlink():
        # A writer may have recreated the file (safetensors writes mode 0o600): the
        # published file gets the permissions any new file of this process would.
        os.chmod(tmp, 0o666 & ~_umask())
    _fsync_file(tmp)
    if overwrite:
        os.replace(tmp, dst)
    else:
        try:
            if not _renameat2_noreplace(tmp, dst) and not _link_noreplace(tmp, dst):
                _placeholder_noreplace(tmp, dst)
        except FileExistsError:
            raise FileExistsError(
                f"Output '{dst}' of geofm.geo.{caller} was created by another writer while "
                "this run was writing it; it was left as it is and this run's result was "
                "discarded. Pass overwrite=True to replace it."
            ) from None
    _fsync_dir(dst.parent)


@contextmanager
def atomic_output(dst: Path, *, overwrite: bool, caller: str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``dst`` (see :func:`commit`).

    On any exception (or a ``FileExistsError`` at the rename) the temporary file
    is removed and ``dst`` is left as it was.

    Args:
        dst: The final path (checked beforehand with :func:`check_output`).
        overwrite: Replace an existing ``dst``.
        caller: Public function name, for messages.

    Yields:
        The temporary file's path, an empty file to overwrite.

    Example:
        >>> import tempfile, pathlib
        >>> dst = pathlib.Path(tempfile.mkdtemp()) / "index.csv"
        >>> with atomic_output(dst, overwrite=False, caller="f") as tmp:
        ...     _ = tmp.write_text("a,b")
        >>> dst.read_text()
        'a,b'
    """
    tmp = create_temp(dst)
    try:
        yield tmp
        commit(tmp, dst, overwrite=overwrite, caller=caller)
    finally:
        remove_path(tmp)
