"""pgBackRest: the backups of a stanza, its restorable window, and a point-in-time restore into a new directory.

:class:`PgBackRest` runs the ``pgbackrest`` binary (never through a shell, always with a timeout,
as ``postgres`` through ``runuser`` when we are root) and reads ``info --output=json``. A failed
command is one line: pgBackRest's own ``ERROR: [NNN]: ...`` line (its ``HINT`` as the hint), as an
:class:`~opsctl.errors.UpstreamError`, or a :class:`~opsctl.errors.RefusedError` for the codes that
mean "nothing to restore" or "the target directory is in use".

:meth:`PgBackRest.restore` writes only into a new, empty data directory: the source's data
directory and server are never touched (``--pg1-path`` points at the new directory, tablespaces
are mapped next to it, symlinks are restored as plain directories, no ``--delta``/``--force``),
and the copy gets ``archive_mode = 'off'`` so that, once promoted, it can never push WAL of its
new timeline into the production repository (checked in ``postgresql.auto.conf`` after the
restore, and forced again on the command line by :func:`start_restored`).

pgBackRest 2.45 reads ``--target`` for ``--type=time`` only as ``YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]``
(a ``T`` separator fails with ``[029] automatic backup set selection cannot be performed``), so the
target is written that way, with its UTC offset.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from opsctl.errors import FailedError, OpsctlError, RefusedError, UpstreamError, UsageError
from opsctl.integrations.proc import run_bounded
from opsctl.integrations.retry import truncate

# pgBackRest error codes that mean "refused", not "broken": nothing to restore, or the target is in use.
_REFUSED_CODES = {"038", "040", "075"}  # path not empty / postmaster running / no backup set
# info --output=json status codes of a stanza
_NO_BACKUP = 2
_MISSING = {1, 3}  # missing stanza path / missing stanza data
# options restore() sets itself, or that could make a restore write outside the new directory
_FORBIDDEN_EXTRA = (
    "--stanza",
    "--config",
    "--pg1-path",
    "--type",
    "--target",
    "--target-action",
    "--archive-mode",
    "--delta",
    "--force",
    "--link-all",
)
_SAFE_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_./:@+=-]+$")


def _default_run_as() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


def _prefix(run_as: str | None) -> list[str]:
    return ["runuser", "-u", run_as, "--"] if run_as else []


_run = run_bounded


def error_line(stderr: str, stdout: str = "") -> tuple[str, str | None]:
    """The meaningful line of a failed pgBackRest run (its last ``ERROR:`` line) and its ``HINT``, if any."""
    lines = [line.strip() for line in (stderr or stdout).splitlines() if line.strip()]
    if not lines:
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    error = next((i for i in range(len(lines) - 1, -1, -1) if "ERROR:" in lines[i]), None)
    if error is None:
        return (truncate(lines[-1]) if lines else "no output"), None
    text = lines[error][lines[error].index("ERROR:") :]
    hint = next((ln.split("HINT:", 1)[1].strip() for ln in lines[error + 1 :] if "HINT:" in ln), None)
    return truncate(text), (truncate(hint) if hint else None)


def _failure(what: str, done: subprocess.CompletedProcess[str]) -> OpsctlError:
    text, hint = error_line(done.stderr, done.stdout)
    match = re.match(r"ERROR: \[(\d{3})\]", text)
    if match and match.group(1) in _REFUSED_CODES:
        return RefusedError(f"{what}: {text}", hint)
    return UpstreamError(f"{what}: {text}", hint)


def target_text(at: datetime) -> str:
    """A target time as pgBackRest and PostgreSQL both read it: ``2026-11-27 19:33:07.523595+00:00``."""
    if at.tzinfo is None:
        raise UsageError("the target time has no time zone")
    return at.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


@dataclass(frozen=True)
class Backup:
    label: str
    type: str  # "full" | "diff" | "incr"
    started_at: datetime  # UTC
    stopped_at: datetime  # UTC
    size: int  # bytes: the database as backed up
    repo_size: int | None  # bytes in the repository (compressed), when pgBackRest says
    wal_start: str
    wal_stop: str


@dataclass(frozen=True)
class Window:
    """The times a point-in-time restore can reach: from the oldest backup's end to what is archived."""

    earliest: datetime | None
    latest: datetime | None


class PgBackRest:
    """One stanza of a pgBackRest repository, as its config file describes it."""

    def __init__(
        self,
        *,
        config: str | None,
        stanza: str,
        run_as: str | None = _default_run_as(),  # evaluated once: our euid does not change
        timeout: float = 600,
        binary: str = "pgbackrest",
    ) -> None:
        if not stanza or not _SAFE_OPTION_VALUE.match(stanza):
            raise UsageError(f"invalid pgBackRest stanza name {stanza!r}")
        self.config = config
        self.stanza = stanza
        self.run_as = run_as
        self.timeout = timeout
        self.binary = binary

    def _argv(self, command: str, *options: str) -> list[str]:
        config = [f"--config={self.config}"] if self.config else []
        return [*_prefix(self.run_as), self.binary, *config, f"--stanza={self.stanza}", *options, command]

    def _call(self, command: str, *options: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        what = f"pgbackrest {command} (stanza {self.stanza})"
        done = _run(self._argv(command, *options), timeout=timeout or self.timeout, what=what)
        if done.returncode != 0:
            raise _failure(what, done)
        return done

    def info(self) -> dict[str, Any]:
        """The stanza's entry of ``info --output=json``; RefusedError when it has no backup."""
        done = self._call("info", "--output=json", timeout=min(self.timeout, 120))
        try:
            data = json.loads(done.stdout)
        except ValueError:
            raise UpstreamError(
                f"pgbackrest info (stanza {self.stanza}) answered no JSON: {truncate(done.stdout[:200])}"
            ) from None
        entries = data if isinstance(data, list) else []
        entry = next((e for e in entries if isinstance(e, dict) and e.get("name") == self.stanza), None)
        if entry is None:
            raise UpstreamError(f"pgbackrest info has no entry for stanza {self.stanza}")
        status = entry.get("status")
        if not isinstance(status, dict):
            status = {}
        code, message = status.get("code"), str(status.get("message", ""))
        if code == _NO_BACKUP:
            raise RefusedError(f"no backup of stanza {self.stanza}", "take one with: pgbackrest backup --type=full")
        if code in _MISSING:
            raise UsageError(
                f"stanza {self.stanza} is not in the pgBackRest repository ({message})",
                "check the stanza name and the config's repo1-path",
            )
        if code != 0:
            causes = [
                f"repo{r.get('key', '?')}: {(r.get('status') or {}).get('message')}"
                for r in entry.get("repo") or []
                if isinstance(r, dict) and (r.get("status") or {}).get("code") not in (0, None)
            ]  # the real reason (a TLS certificate, a missing bucket) is in the repository's status
            cause = f": {truncate('; '.join(causes))}" if causes else ""
            raise UpstreamError(
                f"pgBackRest stanza {self.stanza} is not usable: {truncate(message)} (status {code}){cause}"
            )
        return dict(entry)

    def backups(self) -> list[Backup]:
        """Every backup of the stanza, oldest first."""
        found = []
        for raw in self.info().get("backup") or []:
            try:
                stamp, info, archive = raw["timestamp"], raw["info"], raw.get("archive") or {}
                repo_size = (info.get("repository") or {}).get("size")
                found.append(
                    Backup(
                        label=str(raw["label"]),
                        type=str(raw["type"]),
                        started_at=datetime.fromtimestamp(int(stamp["start"]), UTC),
                        stopped_at=datetime.fromtimestamp(int(stamp["stop"]), UTC),
                        size=int(info["size"]),
                        repo_size=int(repo_size) if repo_size is not None else None,
                        wal_start=str(archive.get("start") or ""),
                        wal_stop=str(archive.get("stop") or ""),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise UpstreamError(f"pgbackrest info: a backup entry without {exc}: {truncate(repr(raw))}") from None
        return sorted(found, key=lambda b: (b.started_at, b.label))

    def window(self, *, archived_until: datetime | None = None) -> Window:
        """Earliest: the oldest backup's end (its first consistent point); latest: ``archived_until``, as given.

        The caller reads ``pg_stat_archiver.last_archived_time`` on the primary: the repository
        alone does not say when the last archived segment's last transaction committed.
        """
        backups = self.backups()
        earliest = min((b.stopped_at for b in backups), default=None)
        return Window(earliest, archived_until)

    def restore(self, *, target_time: datetime | None, pg_path: str, port: int, extra: Sequence[str] = ()) -> None:
        """Restore the stanza as of ``target_time`` into the new, empty ``pg_path``; the copy promotes when there.

        ``port`` is written into the copy's ``postgresql.auto.conf`` (and must be free now). The
        source's data directory, server and repository archive are never written.
        """
        when = target_text(target_time) if target_time is not None else "latest"
        if not 0 < port < 65536:
            raise UsageError(f"invalid port {port}")
        for option in extra:
            name = option.split("=", 1)[0]
            if name in _FORBIDDEN_EXTRA:
                raise UsageError(f"pgbackrest restore: {name} is set by opsctl and cannot be passed")
        path = Path(pg_path)
        if not path.is_absolute() or not _SAFE_OPTION_VALUE.match(pg_path):
            raise UsageError(f"the restore directory must be an absolute path of plain characters: {pg_path!r}")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RefusedError(f"will not restore into {pg_path}: it exists and is not empty", "pick a new directory")
        if not path.parent.is_dir():
            raise UsageError(f"the parent of the restore directory does not exist: {path.parent}")
        if _port_in_use(port):
            raise RefusedError(f"will not restore for port {port}: something listens on it", "pick a free port")
        backups = self.backups()  # RefusedError when there is none
        earliest = min(b.stopped_at for b in backups) if backups else None
        if earliest is None or (target_time is not None and target_time < earliest):
            raise RefusedError(
                f"{when} is before the earliest restorable time of stanza {self.stanza} ({earliest})",
                "the oldest backup ended after it",
            )
        created = not path.exists()
        if created:
            path.mkdir(mode=0o700)
        if self.run_as and os.geteuid() == 0:
            os.chown(path, *_ids(self.run_as))
        try:
            self._call(
                "restore",
                f"--pg1-path={pg_path}",
                *(
                    ("--type=time", f"--target={when}", "--target-action=promote")
                    if target_time is not None
                    else ("--type=default",)
                ),  # the latest: replay all archived WAL, then promote
                "--archive-mode=off",
                f"--tablespace-map-all={pg_path}.tablespaces",
                f"--recovery-option=port={port}",
                *extra,
            )
        except OpsctlError:
            if created and not any(path.iterdir()):
                path.rmdir()
            raise
        auto = path / "postgresql.auto.conf"
        text = auto.read_text() if auto.exists() else ""
        if not re.search(r"^\s*archive_mode\s*=\s*'?off'?\s*$", text, re.M):
            raise FailedError(
                f"the restored copy in {pg_path} does not have archive_mode = off",
                "do not start it: it could push WAL into the production repository",
            )
        self._check_tablespaces(path)

    def _source_path(self) -> str | None:
        """The stanza's ``pg1-path`` as the config file names it (None when it cannot be read)."""
        import configparser

        if not self.config:
            return None
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(Path(self.config).read_text())
        except (OSError, UnicodeDecodeError, configparser.Error):
            return None
        for section in (self.stanza, "global"):
            if parser.has_option(section, "pg1-path"):
                return parser.get(section, "pg1-path").strip()
        return None

    def _check_tablespaces(self, restored: Path) -> None:
        """Refuse a copy whose WAL replay could write into a tablespace of a source on this host.

        A tablespace created after the restored backup is re-created by replay at the location
        its CREATE TABLESPACE named: the source's own directory when the source lives on this host.
        So every tablespace the local source has must already be in the copy (mapped next to it).
        """
        source = self._source_path()
        if not source or Path(source).resolve() == restored.resolve():
            return
        try:
            theirs = {entry.name for entry in (Path(source) / "pg_tblspc").iterdir()}
        except OSError:
            return  # no local source (a restore on another host), or one we may not read
        ours = {entry.name for entry in (restored / "pg_tblspc").iterdir()}
        if missing := sorted(theirs - ours):
            raise RefusedError(
                f"the restored copy in {restored} lacks tablespace(s) {', '.join(missing)} of the source {source} "
                "on this host: replaying their CREATE TABLESPACE would write into the source's directories",
                "do not start it; restore on another host, or from a backup taken after the tablespace was created",
            )


def _ids(user: str) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"no such user {user!r}") from None
    return entry.pw_uid, entry.pw_gid


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pg_ctl(pg_path: str) -> str:
    """pg_ctl of the data directory's major version (Debian layout), else the one on PATH."""
    try:
        major = (Path(pg_path) / "PG_VERSION").read_text().strip()
    except OSError:
        major = ""
    candidate = Path("/usr/lib/postgresql") / major / "bin" / "pg_ctl"
    return str(candidate) if major and candidate.exists() else "pg_ctl"


def start_restored(
    pg_path: str,
    port: int,
    socket_dir: str,
    log: str,
    *,
    run_as: str | None = _default_run_as(),
    timeout: float = 600,
) -> None:
    """Start a restored copy on 127.0.0.1:``port`` (``pg_ctl -w``), with archiving off whatever its config says."""
    if not _SAFE_OPTION_VALUE.match(socket_dir):
        raise UsageError(f"the socket directory must be a path of plain characters: {socket_dir!r}")
    options = (
        f"-p {int(port)} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} -c archive_mode=off"
    )
    argv = [*_prefix(run_as), _pg_ctl(pg_path), "-D", pg_path, "-l", log, "-o", options]
    argv += ["-w", "-t", str(max(1, int(timeout))), "start"]
    done = _run(argv, timeout=timeout + 30, what=f"pg_ctl start of {pg_path}")
    if done.returncode != 0:
        raise FailedError(
            f"the restored copy in {pg_path} did not start: {_log_problem(log) or error_line(done.stderr, done.stdout)[0]}"
        )


def _log_problem(log: str) -> str | None:
    """The last FATAL/PANIC line of a server log, if any."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return None
    bad = [line for line in text.splitlines() if "FATAL:" in line or "PANIC:" in line]
    return truncate(bad[-1]) if bad else None


def wait_promoted(dsn: str, timeout: float, *, log: str | None = None) -> None:
    """Wait until the server at ``dsn`` has left recovery; FailedError when it does not (or dies: see ``log``)."""
    import psycopg

    deadline = time.monotonic() + timeout
    last = "never reached"
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and row[0] is False:
                    return
                last = "still in recovery"
        except psycopg.Error as exc:
            last = truncate(str(exc)) or type(exc).__name__
        problem = _log_problem(log) if log else None
        if problem:
            raise FailedError(f"the restored server stopped: {problem}")
        if time.monotonic() >= deadline:
            raise FailedError(f"the restored server was not promoted within {timeout:g}s ({last})")
        time.sleep(0.05)


_STOP = re.compile(r"recovery stopping before (?:commit|abort) of transaction \d+, time (?P<t>[0-9][0-9:.+\- ]+)")
_LAST = re.compile(r"last completed transaction was at log time (?P<t>[0-9][0-9:.+\- ]+)")
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?")


def _log_time(text: str) -> datetime | None:
    """A timestamptz as the server logs it (``2026-11-27 19:33:08.528897+00``, ``... -03:30``), aware."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    stamp, sign, hours, minutes, seconds = match.groups()
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0))
    return at.replace(tzinfo=timezone(-offset if sign == "-" else offset))


def recovery_result(log_text: str) -> dict[str, datetime | None]:
    """What the server log says of the (last) point-in-time recovery.

    ``stopped_before``: the commit time of the first transaction not replayed ("recovery stopping
    before commit of transaction N, time T"); ``last_transaction``: the last one replayed ("last
    completed transaction was at log time T"). None when the log does not say.
    """
    result: dict[str, datetime | None] = {"stopped_before": None, "last_transaction": None}
    for line in log_text.splitlines():
        if match := _STOP.search(line):
            result["stopped_before"] = _log_time(match.group("t"))
        elif match := _LAST.search(line):
            result["last_transaction"] = _log_time(match.group("t"))
    return result
