"""Where a database stands against a migrations folder: applied, pending, drift (edited files,
files gone, gaps, out-of-order entries Drizzle would skip), and each pending file's segments —
runs of statements that share a transaction, with each CONCURRENTLY statement on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl.migrate import history
from opsctl.migrate.locks import Effect, effect
from opsctl.migrate.statements import SqlSyntaxError, Statement, split

if TYPE_CHECKING:
    from opsctl.migrate.db import Database
    from opsctl.migrate.history import Applied
    from opsctl.migrate.source import Folder, Migration

# Drift a run may proceed over with --out-of-order; every other kind stops it.
ORDER_KINDS = ("out_of_order", "gap")


@dataclass
class Segment:
    statements: list[tuple[Statement, Effect]]
    transaction: bool  # False: one CONCURRENTLY (or other no-transaction) statement
    current: int = 0  # line of the statement being executed (for the error message)


@dataclass
class Assessment:
    folder: Folder
    applied: dict[str, Applied]
    pending: list[Migration] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)

    def blocking_drift(self, out_of_order: bool) -> list[dict[str, Any]]:
        return [d for d in self.drift if not (out_of_order and d["kind"] in ORDER_KINDS) and d["kind"] != "partial"]


def assess(db: Database | None, folder: Folder) -> Assessment:
    applied = history.read(db, folder.migrations) if db is not None else {}
    out = Assessment(folder, applied)
    out.drift.extend(dict(p) for p in folder.problems)
    known = {m.id for m in folder.migrations}
    newest_when = max((a.when for a in applied.values() if a.when is not None), default=None)
    newest_applied_pos = max((i for i, m in enumerate(folder.migrations) if m.id in applied), default=-1)
    for pos, m in enumerate(folder.migrations):
        done = applied.get(m.id)
        if done is not None and done.state == "applied":
            if done.checksum != m.checksum:
                out.drift.append({
                    "id": m.id, "kind": "edited",
                    "reason": f"{m.display} changed after it was applied (sha256 {done.checksum[:12]}… applied,"
                    f" {m.checksum[:12]}… on disk)",
                })  # fmt: skip
            continue
        out.pending.append(m)
        if done is not None:  # partial
            out.drift.append({"id": m.id, "kind": "partial",
                              "reason": f"{done.segments_done} segment(s) applied; the rest runs next"})  # fmt: skip
            if done.checksum != m.checksum:
                out.drift.append({"id": m.id, "kind": "edited", "reason": f"{m.display} changed since it was begun"})
        elif m.when is not None and newest_when is not None and m.when < newest_when:
            out.drift.append({
                "id": m.id, "kind": "out_of_order",
                "reason": f"pending, but older (when {m.when}) than an applied migration (when {newest_when}):"
                " drizzle-kit's migrator would skip it silently",
            })  # fmt: skip
        elif pos < newest_applied_pos:
            out.drift.append({"id": m.id, "kind": "out_of_order",
                              "reason": "pending, but a later file is already applied"})  # fmt: skip
    for ident, done in applied.items():
        if ident not in known:
            out.drift.append({"id": ident, "kind": "missing_file",
                              "reason": f"applied ({done.source}) but no such migration in {folder.path}"})  # fmt: skip
    return out


def statements_of(m: Migration) -> list[Statement]:
    """Every statement of the file; :class:`SqlSyntaxError` for a chunk the parser rejects."""
    out: list[Statement] = []
    for chunk in m.chunks:
        out.extend(split(chunk.sql, chunk.line))
    return out


def segments_of(m: Migration) -> list[Segment]:
    segments: list[Segment] = []
    for st in statements_of(m):
        eff = effect(st.node)
        if eff.concurrently:
            segments.append(Segment([(st, eff)], transaction=False))
        elif segments and segments[-1].transaction:
            segments[-1].statements.append((st, eff))
        else:
            segments.append(Segment([(st, eff)], transaction=True))
    return segments


def row_estimates(db: Database, tables: set[str]) -> dict[str, int | None]:
    """pg_class.reltuples for the tables that exist (an estimate; -1 before the first ANALYZE)."""
    out: dict[str, int | None] = {}
    for name in sorted(tables):
        try:
            value = db.value(
                "SELECT CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END"
                " FROM pg_class c WHERE c.oid = to_regclass(%s)",
                (name,),
            )
        except Exception:
            value = None
        out[name] = None if value is None else int(value)
    return out


__all__ = ["Assessment", "Segment", "SqlSyntaxError", "assess", "row_estimates", "segments_of", "statements_of"]
