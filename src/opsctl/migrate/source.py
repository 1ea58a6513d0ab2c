"""Reading a migrations folder: Drizzle's journal layout (``NNNN_name.sql`` + ``meta/_journal.json``),
Drizzle 1.0's folder layout (``<YYYYMMDDHHMMSS>_<name>/migration.sql``) or a plain folder of ordered
``.sql`` files.  Each migration carries its sha256 (Drizzle's hash: of the whole file), its Drizzle
``when`` and its chunks (split on ``--> statement-breakpoint``) with their first line."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opsctl.errors import UsageError

BREAKPOINT = "--> statement-breakpoint"
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILES = 10_000
_FOLDER_V1 = re.compile(r"^(\d{14})_([A-Za-z0-9_.-]+)$")
_PLAIN = re.compile(r"^(\d+)[_-]?.*\.sql$")


@dataclass(frozen=True)
class Chunk:
    sql: str
    line: int  # first line of the chunk in its file


@dataclass(frozen=True)
class Migration:
    id: str  # "0003_add_email", "20250101120000_init", "V3__users" (the file's stem / folder name)
    display: str  # path shown to people, relative to the migrations folder
    path: Path
    text: str
    checksum: str  # sha256 hex of the file's bytes (what Drizzle stores as ``hash``)
    when: int | None = None  # Drizzle's folderMillis (journal ``when`` or the folder timestamp)
    chunks: list[Chunk] = field(default_factory=list)


@dataclass
class Folder:
    path: Path
    layout: str  # "drizzle" | "drizzle-v1" | "plain"
    migrations: list[Migration]
    problems: list[dict[str, str]] = field(default_factory=list)  # gaps, out-of-order journal entries

    @property
    def drizzle(self) -> bool:
        return self.layout.startswith("drizzle")


def _read(path: Path) -> tuple[str, str]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(f"{path}: {size} bytes is too large for a migration (at most {MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return text, hashlib.sha256(raw).hexdigest()


def chunks_of(text: str) -> list[Chunk]:
    """Drizzle's breakpoints split a file into chunks; a file without them is one chunk."""
    out: list[Chunk] = []
    line = 1
    for part in text.split(BREAKPOINT):
        if part.strip():
            out.append(Chunk(part, line))
        line += part.count("\n")
    return out


def _migration(root: Path, path: Path, ident: str, when: int | None) -> Migration:
    text, checksum = _read(path)
    return Migration(ident, str(path.relative_to(root)), path, text, checksum, when, chunks_of(text))


def load(path: Path) -> Folder:
    if not path.is_dir():
        raise UsageError(f"{path}: no such migrations folder", "set database.migrations in the config or pass --dir")
    journal = path / "meta" / "_journal.json"
    if journal.is_file():
        return _journal_layout(path, journal)
    folders = sorted(p for p in path.iterdir() if p.is_dir() and (p / "migration.sql").is_file())
    if folders:
        return _folder_layout(path, folders)
    return _plain_layout(path)


def _journal_layout(root: Path, journal: Path) -> Folder:
    text, _ = _read(journal)
    try:
        doc = json.loads(text)
        entries = list(doc["entries"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{journal}: not a Drizzle journal ({exc})") from None
    if len(entries) > MAX_FILES:
        raise UsageError(f"{journal}: {len(entries)} entries (at most {MAX_FILES})")
    migrations: list[Migration] = []
    problems: list[dict[str, str]] = []
    seen_tags: set[str] = set()
    for pos, entry in enumerate(entries):
        try:
            tag, when, idx = str(entry["tag"]), int(entry["when"]), int(entry.get("idx", pos))
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{journal}: entry {pos} needs a tag and a numeric when") from None
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", tag) or tag in seen_tags:
            raise UsageError(f"{journal}: entry {pos} has a bad or repeated tag {tag[:80]!r}")
        seen_tags.add(tag)
        if idx != pos:
            problems.append({"id": tag, "kind": "gap", "reason": f"journal idx {idx} at position {pos}"})
        file = root / f"{tag}.sql"
        if not file.is_file():
            problems.append({"id": tag, "kind": "missing", "reason": f"{file.name} is in the journal but not on disk"})
            continue
        if migrations and migrations[-1].when is not None and when <= migrations[-1].when:
            problems.append({
                "id": tag, "kind": "out_of_order",
                "reason": f"journal when {when} is not after {migrations[-1].id}'s {migrations[-1].when}:"
                " drizzle-kit's migrator would skip it silently",
            })  # fmt: skip
        migrations.append(_migration(root, file, tag, when))
    on_disk = {p.stem for p in root.glob("*.sql")}
    for stray in sorted(on_disk - seen_tags):
        problems.append({"id": stray, "kind": "unjournaled", "reason": f"{stray}.sql is not in meta/_journal.json"})
    _number_gaps(migrations, problems)
    return Folder(root, "drizzle", migrations, problems)


def _folder_layout(root: Path, folders: list[Path]) -> Folder:
    if len(folders) > MAX_FILES:
        raise UsageError(f"{root}: {len(folders)} migrations (at most {MAX_FILES})")
    migrations: list[Migration] = []
    problems: list[dict[str, str]] = []
    for folder in folders:
        match = _FOLDER_V1.match(folder.name)
        if match is None:
            problems.append({"id": folder.name, "kind": "unrecognised", "reason": "expected <YYYYMMDDHHMMSS>_<name>"})
            continue
        try:
            stamp = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            problems.append({"id": folder.name, "kind": "unrecognised", "reason": "the timestamp is not a date"})
            continue
        migrations.append(_migration(root, folder / "migration.sql", folder.name, int(stamp.timestamp() * 1000)))
    return Folder(root, "drizzle-v1", migrations, problems)


def _plain_layout(root: Path) -> Folder:
    files = sorted(root.glob("*.sql"))
    if len(files) > MAX_FILES:
        raise UsageError(f"{root}: {len(files)} migrations (at most {MAX_FILES})")
    migrations = [_migration(root, f, f.stem, None) for f in files]
    problems: list[dict[str, str]] = []
    _number_gaps(migrations, problems)
    return Folder(root, "plain", migrations, problems)


def _number_gaps(migrations: list[Migration], problems: list[dict[str, str]]) -> None:
    """Numbered files (0001_, 0002_ …): a missing number is a gap (a file lost in a merge)."""
    numbers: list[tuple[int, str]] = []
    for m in migrations:
        match = re.match(r"^(\d{1,6})(?:_|-|$)", m.id)
        if match is None:
            return
        numbers.append((int(match.group(1)), m.id))
    for (a, _), (b, ident) in itertools.pairwise(numbers):
        if b == a:
            problems.append({"id": ident, "kind": "duplicate", "reason": f"number {b} is used twice"})
        elif b > a + 1:
            missing = ", ".join(str(n).zfill(4) for n in range(a + 1, min(b, a + 6)))
            problems.append({"id": ident, "kind": "gap", "reason": f"missing {missing} before {ident}"})
