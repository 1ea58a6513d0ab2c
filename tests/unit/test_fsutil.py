"""Private dirs and files whatever the umask; bounded reads that never block."""

from __future__ import annotations

import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from opsctl.configfile import Source, snapshot
from opsctl.errors import ExitCode, RefusedError, UsageError
from opsctl.fsutil import (
    FileTooLarge,
    RefusedFile,
    ensure_private_dir,
    read_bounded,
    write_document,
    write_private_file,
)


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_private_dir_creates_every_missing_component_0700_under_umask_0(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    with umask(0):
        assert ensure_private_dir(target) == target
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700, 0o700, 0o700]


def test_private_dir_leaves_existing_dirs_as_they_are(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    loose = shared / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    with umask(0):
        ensure_private_dir(loose)
        ensure_private_dir(shared / "mine")
    assert (mode(shared), mode(loose), mode(shared / "mine")) == (0o755, 0o777, 0o700)


def test_private_dir_under_a_restrictive_umask_is_still_usable(tmp_path):
    with umask(0o277):
        ensure_private_dir(tmp_path / "x" / "y")
    assert mode(tmp_path / "x") == mode(tmp_path / "x" / "y") == 0o700


def test_private_dir_follows_an_existing_symlinked_parent(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    ensure_private_dir(tmp_path / "link" / "state")
    assert mode(real / "state") == 0o700


def test_private_dir_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        ensure_private_dir(tmp_path / "file" / "state")


def test_private_file_is_0600_under_umask_0_and_replaces_atomically(tmp_path):
    (tmp_path / "dir").mkdir()
    path = tmp_path / "dir" / "cache.json"
    path.write_text("old")
    path.chmod(0o644)
    with umask(0):
        write_private_file(path, '{"new": true}')
    assert path.read_text() == '{"new": true}' and mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["cache.json"]  # no temporary left behind


def test_private_file_replaces_a_symlink_without_writing_through_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    path = tmp_path / "cache.json"
    path.symlink_to(elsewhere)
    write_private_file(path, b"data", durable=True)
    assert elsewhere.read_text() == "untouched"
    assert not path.is_symlink() and path.read_bytes() == b"data" and mode(path) == 0o600


def test_snapshot_creates_the_state_dir_private_under_umask_0(tmp_path, example_config):
    state = tmp_path / "fresh" / "state"
    with umask(0):
        data = snapshot(Source(example_config, "--config"), state / "config-cache")
    assert data["environments"] == ["production", "staging"]
    files = list((state / "config-cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"
    assert [mode(p) for p in (tmp_path / "fresh", state, state / "config-cache", files[0])] == [
        0o700,
        0o700,
        0o700,
        0o600,
    ]


def test_read_bounded_reads_up_to_the_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(FileTooLarge):
        read_bounded(path, 99)


def test_read_bounded_refuses_a_fifo_without_opening_it(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            read_bounded(path, 100)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(timeout=30)  # hang guard: opening a FIFO for reading blocks until a writer comes
    assert len(outcome) == 1 and isinstance(outcome[0], RefusedFile)
    assert outcome[0].reason == "is a named pipe (FIFO), not a regular file"


@pytest.mark.parametrize(("path", "reason"), [("/dev/zero", "is a character device, not a regular file")])
def test_read_bounded_refuses_devices(path, reason):
    with pytest.raises(RefusedFile) as info:
        read_bounded(Path(path), 100)
    assert info.value.reason == reason


def test_write_document_creates_refuses_to_clobber_and_replaces_on_request(tmp_path):
    out = tmp_path / "docs" / "pm.md"
    out.parent.mkdir()
    with umask(0o022):
        assert write_document(out, "# draft 1\n") == out
    assert out.read_text() == "# draft 1\n" and mode(out) == 0o644
    with pytest.raises(RefusedError) as info:
        write_document(out, "# draft 2\n")
    assert info.value.exit_code == ExitCode.REFUSED and info.value.hint == "rerun with --yes to replace it"
    assert out.read_text() == "# draft 1\n"
    write_document(out, "# draft 2\n", replace=True)
    assert out.read_text() == "# draft 2\n"
    assert [p.name for p in out.parent.iterdir()] == ["pm.md"]  # no temporary left behind


def test_write_document_never_writes_through_a_symlink(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "pm.md"
    link.symlink_to(target)
    with pytest.raises(RefusedError):
        write_document(link, "x")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere")
    with pytest.raises(RefusedError):
        write_document(tmp_path / "dangling.md", "x")
    assert not (tmp_path / "nowhere").exists()
    write_document(link, "new", replace=True)
    assert target.read_text() == "keep" and not link.is_symlink() and link.read_text() == "new"


def test_write_document_into_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        write_document(tmp_path / "missing" / "pm.md", "x")
    missing = tmp_path / "missing"
    assert info.value.message == f"cannot write {missing / 'pm.md'}: the directory {missing} does not exist"
