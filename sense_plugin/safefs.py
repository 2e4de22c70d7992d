"""Symlink-proof file-system steps inside the export roots (blocking; run in the I/O executor).

Every step starts from an open descriptor of a configured export root and walks down one
component at a time with ``O_NOFOLLOW | O_DIRECTORY``: a symlink (or a file) swapped in
anywhere below the root between admission and completion makes the step fail with -1004,
it is never followed. Files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and read with
``O_NOFOLLOW``; export directories are created exclusively (an existing one is never reused),
and finished files get their final names without replacing anything (:func:`rename_exclusive`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from sense_plugin.errors import GeneralError, PathNotAllowedError, StorageError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
DIR_MODE = 0o750
FILE_MODE = 0o640
#: errno values of a walk that met a symlink or a non-directory where a directory should be.
_NOT_A_DIR = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EMLINK})
#: errno values of ``link`` on a file system that has no hard links (some network shares).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS})


def split_under_root(directory: Path, roots: tuple[Path, ...]) -> tuple[Path, tuple[str, ...]]:
    """The (real) root holding ``directory`` and the components below it; -1004 if none."""
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if directory == real_root or directory.is_relative_to(real_root):
            return real_root, directory.relative_to(real_root).parts
    raise PathNotAllowedError(f"directory '{directory}' is not inside the export roots")


def open_dir(directory: Path, roots: tuple[Path, ...], *, create: bool = False) -> int:
    """A descriptor of ``directory``, reached from its root without following any symlink.

    With ``create``, missing components are made (mode 0750). The caller closes the fd.
    """
    root, parts = split_under_root(directory, roots)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root is trusted
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _NOT_A_DIR:
                    raise PathNotAllowedError(
                        f"'{part}' under {root} is now a symlink or not a directory; "
                        "nothing is written or read through it") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_dir(directory: Path, roots: tuple[Path, ...], *,
               create: bool = False) -> Iterator[int]:
    """:func:`open_dir` as a context manager."""
    fd = open_dir(directory, roots, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def make_export_dir(directory: Path, roots: tuple[Path, ...]) -> None:
    """Create ``<out_base>/<exportid>`` exclusively; an existing directory is an error."""
    with opened_dir(directory.parent, roots, create=True) as parent:
        try:
            os.mkdir(directory.name, DIR_MODE, dir_fd=parent)
        except FileExistsError:
            raise StorageError(f"export directory {directory} already exists; an export "
                               "directory is never reused") from None


def create_exclusive(dir_fd: int, name: str) -> int:
    """A new file ``name`` in ``dir_fd`` opened for writing; fails if anything has that name."""
    return os.open(name, CREATE_FLAGS, FILE_MODE, dir_fd=dir_fd)


def open_regular(dir_fd: int, name: str) -> int:
    """``name`` in ``dir_fd`` opened for reading: not through a symlink, a regular file only."""
    fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"'{name}' is not a regular file")
    os.set_blocking(fd, True)
    return fd


def write_atomic(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``name`` in ``dir_fd``: exclusive temp file, fsync, rename, fsync the directory."""
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = create_exclusive(dir_fd, temp)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def rename_exclusive(source: str, target: str) -> None:
    """Give the file ``source`` the name ``target``, never replacing anything named ``target``.

    A rename would silently replace a file of another device that happens to have the same
    name (two parts starting at the same keyframe); a hard link fails instead, and the
    temporary name is dropped only once the link exists. Raises -18 naming the file when
    ``target`` is taken (``source`` is left for the caller to delete). On a file system
    without hard links the name is checked first and the file renamed: only this export's
    own workers write into its directory, so the gap between the two is theirs alone.
    """
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise _taken(target) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            raise _taken(target) from None
        os.rename(source, target)
        return
    os.unlink(source)


def _taken(target: str) -> GeneralError:
    return GeneralError(f"'{os.path.basename(target)}' exists already in the export directory "
                        "(another device of this export wrote a file of that name); it is "
                        "not overwritten")


def rename_all_exclusive(pairs: list[tuple[str, str]]) -> None:
    """:func:`rename_exclusive` for each (temporary, final) pair, all or nothing: on a failure
    every file of the list, renamed or not, is deleted and the error raised."""
    done: list[str] = []
    try:
        for source, target in pairs:
            rename_exclusive(source, target)
            done.append(target)
    except BaseException:
        for path in [*done, *(source for source, _ in pairs[len(done):])]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise


def unlink_quietly(dir_fd: int, name: str) -> None:
    """Remove ``name`` from ``dir_fd`` if it is there (never follows a symlink)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def remove_empty_dirs(directory: Path, roots: tuple[Path, ...]) -> None:
    """Remove ``directory`` and then each parent that became empty, up to (not) the root."""
    try:
        _root, parts = split_under_root(directory, roots)
    except PathNotAllowedError:
        return
    for depth in range(len(parts), 0, -1):
        parent = directory.parents[len(parts) - depth]
        try:
            with opened_dir(parent, roots) as fd:
                os.rmdir(parts[depth - 1], dir_fd=fd)
        except OSError:
            return  # not empty, already gone, or swapped: stop here


def proc_path(dir_fd: int, name: str) -> str:
    """A path another process of ours can open that always means ``name`` in ``dir_fd``.

    ``/proc/<pid>/fd/<n>`` resolves to the directory this process holds open, whatever is
    renamed or swapped on the way to it later (Linux); the export workers write through it.
    """
    return f"/proc/{os.getpid()}/fd/{dir_fd}/{name}"


def proc_available() -> bool:
    """True where ``/proc/<pid>/fd`` paths work (Linux with /proc mounted)."""
    return os.path.isdir(f"/proc/{os.getpid()}/fd")
