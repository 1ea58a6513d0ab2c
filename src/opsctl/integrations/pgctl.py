"""A PostgreSQL server on this host, driven through its own tools as the owner of its data
directory (``runuser`` when we are root): stop, start on a given port, and make a fresh standby
with ``pg_basebackup -R``.  Every command is bounded in time and fails in one line."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from opsctl.errors import FailedError, RefusedError
from opsctl.integrations.proc import run_bounded


def owner(data_dir: str) -> str:
    try:
        return pwd.getpwuid(Path(data_dir).stat().st_uid).pw_name
    except (OSError, KeyError) as exc:
        raise RefusedError(f"cannot read the owner of {data_dir}: {exc}") from None


def _as(user: str) -> list[str]:
    if os.geteuid() == 0 and user != "root":
        return ["runuser", "-u", user, "--"]
    if pwd.getpwuid(os.geteuid()).pw_name != user:
        raise RefusedError(f"the data directory belongs to {user}: run opsctl as {user} (or root)")
    return []


def bin_dir(data_dir: str) -> Path:
    """The server binaries of the data directory's major version (Debian layout, else PATH)."""
    try:
        major = (Path(data_dir) / "PG_VERSION").read_text().strip()
    except OSError:
        major = ""
    candidate = Path("/usr/lib/postgresql") / major / "bin"
    return candidate if major and (candidate / "pg_ctl").exists() else Path("")


def _tool(data_dir: str, name: str) -> str:
    found = bin_dir(data_dir) / name
    return str(found) if str(found.parent) not in ("", ".") else name


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def stop(data_dir: str, *, mode: str = "fast", timeout: float = 120) -> bool:
    """Stop the server (True) or find it already stopped (False)."""
    if not (Path(data_dir) / "postmaster.pid").exists():
        return False
    user = owner(data_dir)
    argv = [*_as(user), _tool(data_dir, "pg_ctl"), "-D", data_dir, "-m", mode, "-w", "-t", str(int(timeout)), "stop"]
    done = run_bounded(argv, timeout=timeout + 30, what=f"pg_ctl stop of {data_dir}")
    if done.returncode != 0:
        raise FailedError(f"could not stop the server in {data_dir}: {_last_line(done.stderr or done.stdout)}")
    return True


def start(data_dir: str, port: int, log: str, *, timeout: float = 300) -> None:
    user = owner(data_dir)
    argv = [*_as(user), _tool(data_dir, "pg_ctl"), "-D", data_dir, "-l", log, "-o", f"-p {int(port)}", "-w",
            "-t", str(int(timeout)), "start"]  # fmt: skip
    done = run_bounded(argv, timeout=timeout + 30, what=f"pg_ctl start of {data_dir}")
    if done.returncode != 0:
        raise FailedError(f"the server in {data_dir} did not start: {_last_line(done.stderr or done.stdout)}")


def basebackup(source_dsn: str, data_dir: str, user: str, *, tool_dir: str, timeout: float = 3600) -> None:
    """A new standby of ``source_dsn`` in the empty ``data_dir`` (``-R``: it follows the source)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = {k: str(v) for k, v in conninfo_to_dict(source_dsn).items() if v is not None}
    password = parts.pop("password", None)  # through the environment: a command line is visible to every user
    argv = [*_as(user), _tool(tool_dir, "pg_basebackup"), "-d", make_conninfo("", **parts), "-D", data_dir, "-R",
            "-X", "stream", "--checkpoint=fast"]  # fmt: skip
    env = {"PGPASSWORD": password} if password else None
    done = run_bounded(argv, timeout=timeout, what=f"pg_basebackup into {data_dir}", env=env)
    if done.returncode != 0:
        raise FailedError(f"pg_basebackup into {data_dir} failed: {_last_line(done.stderr or done.stdout)}")


def make_empty(path: str, user: str) -> None:
    import shutil

    Path(path).mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(path, user, user)
