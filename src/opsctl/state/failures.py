"""What a failure of a state store means for the user, as one :class:`~opsctl.errors.OpsctlError`.

SQLite: a full disk (SQLITE_FULL, or the plain I/O error SQLite reports for EFBIG, the file size
limit) is ``disk full at PATH``, a corrupt file ``state store at PATH is damaged``, another I/O
error ``could not be read or written``: all exit 4, so that the CLI says what happened instead of
"internal error". PostgreSQL: a URL libpq refuses is a config mistake (exit 2); a full server disk
(SQLSTATE 53100), another exhausted server resource (class 53) and a server out of reach are
exit 4. The stores keep the SQL and call in here; psycopg is imported inside functions only.
"""

from __future__ import annotations

import errno
import os
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from opsctl import redact as redaction
from opsctl.errors import OpsctlError, UpstreamError, UsageError

if TYPE_CHECKING:
    import sqlite3

    import psycopg

# ------------------------------------------------------------------ SQLite

# SQLite primary result codes (the low byte of ``sqlite_errorcode``) that tell about the file or
# the disk rather than about our SQL.
_FULL, _IOERR, _CORRUPT, _NOTADB = 13, 10, 11, 26
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # OSError errnos that mean no room for the file
# Room a write may need beyond a file's end: a WAL frame of the largest page size, and the
# shared-memory index growing by one 32 KiB region.
_ROOM = 2 * 65536


def sqlite_cannot_open(location: str, exc: BaseException) -> UsageError:
    return UsageError(
        f"cannot open the state store at {location}: {exc}",
        hint="check that the directory is writable, or point OPSCTL_STATE_DIR elsewhere",
    )


def sqlite_disk_full(location: str, detail: str) -> UpstreamError:
    return UpstreamError(
        f"disk full at {location}: {detail}",
        hint="free space there (or raise the file size limit) and rerun;"
        " nothing was half-written (SQLite rolls back a write it cannot finish)",
    )


def _no_room(path: Path) -> str | None:
    """Why a write to the store at ``path`` found no room, if it did: the process's file size limit
    (``ulimit -f``; SQLite reports EFBIG as a plain I/O error) is reached, or the filesystem is full."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]  # RLIM_INFINITY is -1 (or huge)
    except (ImportError, OSError, ValueError):  # no such limit on this platform
        limit = -1
    if limit >= 0:
        sizes = []
        for name in (str(path) + suffix for suffix in ("", "-wal", "-shm")):
            with suppress(OSError):
                sizes.append(os.stat(name).st_size)
        if max(sizes, default=0) + _ROOM > limit:
            return f"the file size limit of this process (ulimit -f) is {limit} bytes"
    try:
        fs = os.statvfs(path.parent)
    except OSError:
        return None
    free = fs.f_bavail * fs.f_frsize
    return f"{free} bytes free" if free < _ROOM else None


def sqlite_error(path: Path, exc: sqlite3.Error, *, opening: bool = False) -> OpsctlError | None:
    """The error to report for ``exc`` on the store at ``path``; None for one
    that means a bug (SQL, a constraint), and for any other while ``opening`` (the caller says
    it cannot open the store)."""
    import sqlite3

    location = str(path)
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    room = _no_room(path) if primary in (_FULL, _IOERR) else None
    if primary == _FULL or room:
        return sqlite_disk_full(location, f"{room} ({exc})" if room else str(exc))
    if primary == _IOERR:
        name = getattr(exc, "sqlite_errorname", "SQLITE_IOERR")
        return UpstreamError(
            f"state store at {location} could not be read or written: {exc} ({name})",
            hint="check the disk and the kernel log (dmesg); a failed write was rolled back",
        )
    if primary in (_CORRUPT, _NOTADB):
        return UpstreamError(
            f"state store at {location} is damaged ({exc})",
            hint=f"keep the file, it holds the audit log: move {path.name} and its -wal and -shm files"
            " aside (the next opsctl starts a new store) and salvage rows with 'sqlite3 FILE .recover'",
        )
    if opening or not isinstance(exc, sqlite3.OperationalError):
        return None
    return UpstreamError(
        f"state store at {location} failed: {exc}",
        hint="another opsctl may hold the database for long; retry, or check the disk",
    )


# -------------------------------------------------------------- PostgreSQL

PG_HINT = "check that PostgreSQL is running and reachable, and the state store URL in the config"
# How psycopg words an option value libpq rejects before connecting ("… invalid port number: …").
_REJECTED = ("connection is bad: invalid ", "invalid ")


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s text (its type when it has none), secrets masked."""
    text = str(exc).strip()
    return redaction.redact(text.splitlines()[0] if text else type(exc).__name__)


def register_password(url: str) -> None:
    """Mask the URL's password in everything printed from now on, even when the URL does not parse
    (then the text between the first colon of the user info and the last ``@`` is taken)."""
    if "://" not in url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        userinfo = url.split("://", 1)[1].rpartition("@")[0]
        password = userinfo.partition(":")[2] if ":" in userinfo else None
    if password:
        redaction.register(password)
        redaction.register(unquote(password))


def pg_bad_url(location: str, exc: BaseException) -> UsageError:
    reason = first_line(exc).removeprefix("connection is bad: ")
    return UsageError(
        f"invalid state store URL {location}: {reason}",
        hint="fix state.url in the config (postgresql://USER@HOST[:PORT]/DATABASE[?PARAMETER=VALUE])",
    )


def pg_check_url(url: str, location: str) -> None:
    """Refuse a URL libpq cannot parse (exit 2, as any config mistake) before trying to connect."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        urlsplit(url)  # an unclosed IPv6 bracket, for one
        conninfo_to_dict(url)  # libpq's own parser: bad escapes, unknown parameters
    except (ValueError, ProgrammingError) as exc:
        raise pg_bad_url(location, exc) from exc


def pg_connect_error(location: str, exc: psycopg.Error) -> OpsctlError:
    """What a failure to connect means: a URL libpq refused (a ``ProgrammingError``,
    or an option value rejected before any network I/O), else :func:`pg_failure`."""
    import psycopg

    if isinstance(exc, psycopg.ProgrammingError) or first_line(exc).startswith(_REJECTED):
        return pg_bad_url(location, exc)
    return pg_failure(location, exc)


def pg_failure(location: str, exc: BaseException) -> UpstreamError:
    """What a failed statement means: no room on the server (SQLSTATE 53100), another resource
    exhausted (class 53: memory, connections, temp_file_limit), or the server out of reach."""
    state = str(getattr(exc, "sqlstate", None) or "")
    if state == "53100":
        return UpstreamError(
            f"disk full at {location}: {first_line(exc)}",
            hint="free space on the PostgreSQL server's data volume (ask its DBA) and rerun;"
            " the failed write was rolled back",
        )
    if state.startswith("53"):
        return UpstreamError(
            f"state store at {location} is out of resources: {first_line(exc)} (SQLSTATE {state})",
            hint="the PostgreSQL server hit a limit (disk, memory, connections, temporary files);"
            " retry later, or ask its DBA",
        )
    return UpstreamError(f"state store unreachable at {location}: {first_line(exc)}", hint=PG_HINT)
