"""Private directories, atomic private files, documents written on request, bounded reads.

opsctl keeps state (locks, audit log, incident records, the config cache) under
the user's state dir; nobody else on the machine should read it, whatever the
umask of the shell that happened to create it.  And a path a user gives us is
read as a regular file of bounded size: a FIFO would block forever, a device
such as ``/dev/zero`` never ends, and neither is a config file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from opsctl.errors import OpsctlError, RefusedError, UpstreamError, UsageError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class RefusedFile(Exception):
    """A path that exists but is not something to read: ``reason`` completes "it …"."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: it {reason}")
        self.path = path
        self.reason = reason


class FileTooLarge(RefusedFile):
    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(path, f"is larger than the limit of {limit} bytes")
        self.limit = limit


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent with mode 0700, whatever the umask.

    Directories that already exist are left as they are: tightening a dir we did
    not create could break whoever did, and loosening one is never our call.  A
    symlink among the existing parents is followed (a symlinked home or state
    dir is the user's choice); one that dangles is an error, as is a component
    that is not a directory."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while True:
        try:
            mode = os.stat(current).st_mode
        except FileNotFoundError:
            if current.parent == current:
                raise
            missing.append(current)
            current = current.parent
            continue
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(current))
        break
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # created meanwhile by someone else (another opsctl): theirs, left alone
        _chmod_nofollow(directory, PRIVATE_DIR)  # mkdir's mode went through the umask
    return path


def _chmod_nofollow(directory: Path, mode: int) -> None:
    """chmod the directory we just made, not whatever a racing symlink points to."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600 whatever the umask.

    Written to a fresh temporary file in the same directory (created exclusively,
    never through a symlink) and renamed over ``path``: a reader sees the old
    file or the new one, never half of it.  ``durable`` fsyncs the file and the
    directory, for records that must survive a crash; a cache can skip that."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, PRIVATE_FILE)
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE)
            _write_all(fd, payload)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_document(path: Path, text: str, *, replace: bool = False) -> Path:
    """Write a document a user asked for (``--out FILE``) and return its path.

    An existing file (or symlink) at ``path`` is refused (exit 3) unless ``replace``;
    then it is replaced, never written through.  Either way the document appears
    whole or not at all: written to a temporary file beside it, then linked into
    place (which fails if something appeared meanwhile) or renamed over the old
    one.  A character device or FIFO (``/dev/stdout``, a pipe) is written into, never
    replaced.  A full disk is exit 4; a missing directory or a permission problem exit 2."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _write_error(path, exc) from None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return _write_into(path, text)
    if mode is not None and not replace:
        kind = "a symlink" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode) else "a file"
        raise RefusedError(f"{path} already exists ({kind}); nothing was written", "rerun with --yes to replace it")
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"{path} is a directory", "name a file")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            _write_all(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)  # a symlink is replaced by the file, never followed
        else:
            os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise RefusedError(f"{path} already exists; nothing was written", "rerun with --yes to replace it") from None
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_into(path: Path, text: str) -> Path:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            _write_all(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from None
    return path


def _write_error(path: Path, exc: OSError) -> OpsctlError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return UpstreamError(f"disk full writing {path}: {reason}", "free space and rerun; nothing was written")
    if exc.errno == errno.ENOENT and not path.parent.is_dir():
        return UsageError(f"cannot write {path}: the directory {path.parent} does not exist", "create it first")
    return UsageError(f"cannot write {path}: {reason}", "check the path and its permissions")


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refusing anything else without blocking.

    The kind and size are checked with ``stat`` before opening, so a FIFO is
    never opened; the open is non-blocking and checked again (the path may have
    been swapped meanwhile), and at most ``limit + 1`` bytes are read, so a file
    that grows meanwhile is refused too.  Raises :class:`RefusedFile` (:class:`FileTooLarge`), or the
    ``OSError`` of the failing call (not found, permission, symlink loop, …)."""
    path = Path(path)
    info = os.stat(path)
    _check_kind(path, info.st_mode)
    if info.st_size > limit:
        raise FileTooLarge(path, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _check_kind(path, os.fstat(fd).st_mode)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileTooLarge(path, limit)
    return b"".join(chunks)


def _check_kind(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise RefusedFile(path, "is a directory")
    kinds = (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    raise RefusedFile(path, f"is {kind}, not a regular file")
