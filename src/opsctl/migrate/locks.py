"""What a statement does to the tables it touches: the lock it takes (PostgreSQL's documented
lock levels), which tables, and whether it must run outside a transaction (CONCURRENTLY)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
NONE = "none"


@dataclass(frozen=True)
class Effect:
    lock: str
    tables: list[str] = field(default_factory=list)  # "schema.table" or "table"
    concurrently: bool = False  # must run outside a transaction block
    index: str | None = None  # the index a CREATE INDEX CONCURRENTLY builds (cleaned up when left INVALID)
    index_schema: str | None = None


def _name(rel: Any) -> str:
    if rel is None:
        return "?"
    return f"{rel.schemaname}.{rel.relname}" if getattr(rel, "schemaname", None) else str(rel.relname)


def _alter_lock(cmds: Any) -> str:
    from pglast.enums import AlterTableType as T
    from pglast.enums import ConstrType

    weakest = {T.AT_ValidateConstraint, T.AT_SetStatistics, T.AT_ClusterOn, T.AT_SetRelOptions}
    levels: list[str] = []
    for item in cmds or ():
        cmd = getattr(item, "subtype", None)
        if cmd in weakest:
            levels.append(SHARE_UPDATE_EXCLUSIVE)
        elif cmd == T.AT_AddConstraint and getattr(item.def_, "contype", None) == ConstrType.CONSTR_FOREIGN:
            levels.append(SHARE_ROW_EXCLUSIVE)  # and the same on the referenced table
        else:
            levels.append(ACCESS_EXCLUSIVE)
    order = [ACCESS_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE]
    return next((lvl for lvl in order if lvl in levels), ACCESS_EXCLUSIVE)


def effect(node: Any) -> Effect:
    """The lock and tables of one parsed statement (``node`` from :mod:`statements`)."""
    from pglast import ast

    if isinstance(node, ast.AlterTableStmt):
        tables = [_name(node.relation)]
        for item in node.cmds or ():
            ref = getattr(getattr(item, "def_", None), "pktable", None)
            if ref is not None:
                tables.append(_name(ref))
        return Effect(_alter_lock(node.cmds), tables)
    if isinstance(node, ast.IndexStmt):
        schema = getattr(node.relation, "schemaname", None)
        if node.concurrent:
            return Effect(SHARE_UPDATE_EXCLUSIVE, [_name(node.relation)], True, node.idxname, schema)
        return Effect(SHARE, [_name(node.relation)])
    if isinstance(node, ast.DropStmt):
        names = [".".join(getattr(p, "sval", "?") for p in obj) for obj in node.objects or () if isinstance(obj, tuple)]
        return Effect(SHARE_UPDATE_EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE, names, bool(node.concurrent))
    if isinstance(node, ast.CreateStmt | ast.CreateTableAsStmt | ast.ViewStmt | ast.CreateSeqStmt):
        rel = getattr(node, "relation", None) or getattr(node, "view", None) or getattr(node, "sequence", None)
        into = getattr(node, "into", None)
        return Effect(NONE + " (new object)", [_name(rel if rel is not None else getattr(into, "rel", None))])
    if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
        return Effect(ROW_EXCLUSIVE, [_name(node.relation)])
    if isinstance(node, ast.RenameStmt):
        return Effect(ACCESS_EXCLUSIVE, [_name(node.relation)] if node.relation is not None else [])
    if isinstance(node, ast.TruncateStmt):
        return Effect(ACCESS_EXCLUSIVE, [_name(r) for r in node.relations or ()])
    if isinstance(node, ast.ReindexStmt):
        conc = any(getattr(p, "defname", "") == "concurrently" for p in node.params or ())
        rel = [_name(node.relation)] if node.relation is not None else []
        return Effect(SHARE_UPDATE_EXCLUSIVE if conc else ACCESS_EXCLUSIVE, rel, conc)
    if isinstance(node, ast.VacuumStmt):
        return Effect(SHARE_UPDATE_EXCLUSIVE, [], True)
    if isinstance(node, ast.CreateTrigStmt):
        return Effect(SHARE_ROW_EXCLUSIVE, [_name(node.relation)])
    if isinstance(node, ast.AlterEnumStmt | ast.AlterTypeStmt):
        return Effect(ACCESS_EXCLUSIVE + " (type)", [])
    if isinstance(node, ast.VariableSetStmt | ast.SelectStmt | ast.CommentStmt | ast.CreateSchemaStmt):
        return Effect(NONE, [])
    if isinstance(node, ast.CreateFunctionStmt | ast.CreateExtensionStmt | ast.GrantStmt):
        return Effect(NONE, [])
    return Effect(ACCESS_EXCLUSIVE + " (assumed)", [])
