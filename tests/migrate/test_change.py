"""Change files (loading, hostile input) and the SQL of the expand, dual-write and contract phases,
run against the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsctl.errors import ExitCode, RefusedError, UsageError
from opsctl.migrate.change import (
    Change,
    Constraint,
    apply_contract_step,
    contract_statements,
    drop_dual_write_sql,
    dual_write_sql,
    expand_sql,
    invalid_index_query,
    load_change,
    primary_key,
    probe_sql,
    short_name,
)

pytestmark = pytest.mark.postgres

VALID = """\
table: users
column: {name: email_normalized, type: text}
backfill: lower(email)
constraints:
  - not_null
  - unique
  - check: "length(email_normalized) > 2"
  - references: "accounts(email)"
"""


def write(tmp_path: Path, text: str, name: str = "0001_email_normalized.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def conn(scratch_conn: Any) -> Any:
    return scratch_conn


# ------------------------------------------------------------------ loading


def test_valid_change_with_all_four_constraint_kinds(tmp_path: Path) -> None:
    change = load_change(write(tmp_path, VALID))
    assert change.id == "0001_email_normalized"
    assert (change.schema, change.table, change.column, change.type) == ("public", "users", "email_normalized", "text")
    assert change.backfill == "lower(email)"
    assert change.constraints == (
        Constraint("not_null", "users_email_normalized_not_null"),
        Constraint("unique", "users_email_normalized_key"),
        Constraint("check", "users_email_normalized_check", expr="length(email_normalized) > 2"),
        Constraint(
            "references", "users_email_normalized_fkey", ref_schema="public", ref_table="accounts", ref_column="email"
        ),
    )
    assert change.trigger_name == change.function_name == "opsctl_dw_users_email_normalized"


def test_schema_qualified_table_and_reference(tmp_path: Path) -> None:
    text = (
        "table: app.Orders\n"
        "column:\n  name: account_id\n  type: bigint\n"
        "backfill: |\n  (SELECT a.id FROM app.accounts a -- the account\n   WHERE a.code = account_code)\n\n"
        "constraints: [{references: 'billing.accounts (id)'}, {check: 'account_id > 0'}, {check: 'account_id < 10'}]\n"
    )
    change = load_change(write(tmp_path, text))
    assert (change.schema, change.table) == ("app", "Orders")
    assert change.backfill.startswith("(SELECT a.id")
    fk, check1, check2 = change.constraints
    assert (fk.ref_schema, fk.ref_table, fk.ref_column) == ("billing", "accounts", "id")
    assert (check1.name, check2.name) == ("Orders_account_id_check", "Orders_account_id_check2")


def test_long_names_are_shortened_deterministically_and_stay_distinct() -> None:
    table, column = "t" * 40, "c" * 40
    a = short_name(table, column, "not_null")
    b = short_name(table, column, "key")
    assert len(a.encode()) <= 63 and len(b.encode()) <= 63
    assert a != b and a == short_name(table, column, "not_null")
    assert short_name("users", "email", "key") == "users_email_key"


LAYOUT = """\
table: {table}
column:
  name: {name}
  type: {type}
backfill: {backfill}
constraints: {constraints}
"""
GOOD = {
    "table": "users",
    "name": "email_normalized",
    "type": "text",
    "backfill": "lower(email)",
    "constraints": "[not_null]",
}


@pytest.mark.parametrize(
    ("field", "value", "line", "key", "words"),
    [
        ("name", "'email\"x'", 3, "column.name", "not a plain name"),
        ("name", "'email;drop'", 3, "column.name", "not a plain name"),
        ("name", "'email x'", 3, "column.name", "not a plain name"),
        ("name", '"email\\u0007"', 3, "column.name", "not a plain name"),
        ("name", "émail", 3, "column.name", "not a plain name"),
        ("name", "a" * 64, 3, "column.name", "64 bytes"),
        ("table", "'users; drop table users'", 1, "table", "not a plain name"),
        ("table", "a.b.c", 1, "table", "not table or schema.table"),
        ("type", "'text; drop table users'", 4, "column.type", "';'"),
        ("type", "'text --'", 4, "column.type", "comment"),
        ("type", "'text FROM users'", 4, "column.type", "exactly one SQL type"),
        ("type", "bigserial", 4, "column.type", "serial"),
        ("backfill", "'1); drop table users; select (1'", 5, "backfill", "')' without its '('"),
        ("backfill", "'lower(email) FROM users --'", 5, "backfill", "comment"),
        ("backfill", "'lower(email) OR'", 5, "backfill", "not a valid SQL expression"),
        ("backfill", "'(1'", 5, "backfill", "never closed"),
        (
            "constraints",
            "[{check: 'x > 0) NOT VALID; DROP TABLE users; SELECT (1'}]",
            6,
            "constraints[0].check",
            "')' without",
        ),
        ("constraints", "[{references: 'users(id); drop table users'}]", 6, "constraints[0].references", "table"),
        ("constraints", "[{references: 'users(\"id\")'}]", 6, "constraints[0].references", "not a plain name"),
        ("constraints", "[{check: 'x > 0; select 1'}]", 6, "constraints[0].check", "contains ';'"),
        ("constraints", "[not_null, not_null]", 6, "constraints[1]", "twice"),
        ("constraints", "[primary]", 6, "constraints[0]", "must be not_null, unique"),
    ],
)
def test_hostile_values_are_usage_errors_with_file_and_line(
    tmp_path: Path, field: str, value: str, line: int, key: str, words: str
) -> None:
    path = write(tmp_path, LAYOUT.format(**{**GOOD, field: value}))
    with pytest.raises(UsageError) as caught:
        load_change(path)
    message = caught.value.message
    assert message.startswith(f"{path}:{line}: {key}: "), message
    assert words in message
    assert caught.value.exit_code == ExitCode.USAGE


def test_unknown_key_and_missing_backfill(tmp_path: Path) -> None:
    path = write(tmp_path, "table: users\ncolumn: {name: e, type: text}\ncolour: red\n")
    with pytest.raises(UsageError) as caught:
        load_change(path)
    assert caught.value.lines() == [
        f"{path}:1: backfill: required key is missing",
        f"{path}:3: colour: unknown key; expected one of table, column, backfill, constraints",
    ]


def test_duplicate_key_is_reported_where_it_is_repeated(tmp_path: Path) -> None:
    path = write(tmp_path, "table: users\ncolumn: {name: e, type: text}\nbackfill: lower(email)\ntable: accounts\n")
    with pytest.raises(UsageError) as caught:
        load_change(path)
    assert caught.value.lines() == [f"{path}:4: table: duplicate key: give each key once"]


def test_missing_and_unknown_column_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "table: users\ncolumn:\n  name: e\n  default: 1\nbackfill: '1'\n")
    with pytest.raises(UsageError) as caught:
        load_change(path)
    assert caught.value.lines() == [
        f"{path}:2: column.type: required key is missing",
        f"{path}:4: column.default: unknown key; expected one of name, type",
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", None, "empty"),
        ("table: users\ncolumn: [\n", 3, "YAML syntax error"),
        ("- a\n- b\n", 1, "must be a mapping"),
    ],
)
def test_empty_syntax_error_and_wrong_shape(tmp_path: Path, text: str, line: int | None, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_change(path)
    where = f"{path}:{line}:" if line else f"{path}:"
    assert caught.value.message.startswith(where) and words in caught.value.message


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_change(tmp_path / "nope.yaml")


# ------------------------------------------------------------------ exact SQL


def test_builders_render_the_exact_sql(tmp_path: Path, conn: Any) -> None:
    change = load_change(write(tmp_path, VALID))
    assert expand_sql(change).as_string(conn) == (
        'ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "email_normalized" text'
    )
    function, drop, create = (s.as_string(conn) for s in dual_write_sql(change))
    assert function == (
        'CREATE OR REPLACE FUNCTION "public"."opsctl_dw_users_email_normalized"() RETURNS trigger'
        " LANGUAGE plpgsql AS $opsctl$\n"
        "#variable_conflict use_column\n"
        "BEGIN\n"
        "  IF TG_OP = 'INSERT' THEN\n"
        '    IF NEW."email_normalized" IS NULL THEN\n'
        '      NEW."email_normalized" := (SELECT (lower(email)) FROM (SELECT NEW.*) AS "users");\n'
        "    END IF;\n"
        '  ELSIF NEW."email_normalized" IS NOT DISTINCT FROM OLD."email_normalized" THEN\n'
        '    NEW."email_normalized" := (SELECT (lower(email)) FROM (SELECT NEW.*) AS "users");\n'
        "  END IF;\n"
        "  RETURN NEW;\n"
        "END\n"
        "$opsctl$"
    )
    assert drop == 'DROP TRIGGER IF EXISTS "opsctl_dw_users_email_normalized" ON "public"."users"'
    assert create == (
        'CREATE TRIGGER "opsctl_dw_users_email_normalized" BEFORE INSERT OR UPDATE ON "public"."users"'
        ' FOR EACH ROW EXECUTE FUNCTION "public"."opsctl_dw_users_email_normalized"()'
    )
    assert [s.as_string(conn) for s in drop_dual_write_sql(change)] == [
        'DROP TRIGGER IF EXISTS "opsctl_dw_users_email_normalized" ON "public"."users"',
        'DROP FUNCTION IF EXISTS "public"."opsctl_dw_users_email_normalized"()',
    ]
    steps = contract_statements(change)
    t = 'ALTER TABLE "public"."users" '
    assert [(s.sql.as_string(conn), s.concurrently, s.lock) for s in steps] == [
        (
            t + 'ADD CONSTRAINT "users_email_normalized_not_null" CHECK ("email_normalized" IS NOT NULL) NOT VALID',
            False,
            "ACCESS EXCLUSIVE",
        ),
        (t + 'VALIDATE CONSTRAINT "users_email_normalized_not_null"', False, "SHARE UPDATE EXCLUSIVE"),
        (t + 'ALTER COLUMN "email_normalized" SET NOT NULL', False, "ACCESS EXCLUSIVE"),
        (t + 'DROP CONSTRAINT IF EXISTS "users_email_normalized_not_null"', False, "ACCESS EXCLUSIVE"),
        (
            'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_normalized_key"'
            ' ON "public"."users" ("email_normalized")',
            True,
            "SHARE UPDATE EXCLUSIVE",
        ),
        (
            t + 'ADD CONSTRAINT "users_email_normalized_key" UNIQUE USING INDEX "users_email_normalized_key"',
            False,
            "ACCESS EXCLUSIVE",
        ),
        (
            t + 'ADD CONSTRAINT "users_email_normalized_check" CHECK (length(email_normalized) > 2) NOT VALID',
            False,
            "ACCESS EXCLUSIVE",
        ),
        (t + 'VALIDATE CONSTRAINT "users_email_normalized_check"', False, "SHARE UPDATE EXCLUSIVE"),
        (
            t + 'ADD CONSTRAINT "users_email_normalized_fkey" FOREIGN KEY ("email_normalized")'
            ' REFERENCES "public"."accounts" ("email") NOT VALID',
            False,
            "SHARE ROW EXCLUSIVE",
        ),
        (t + 'VALIDATE CONSTRAINT "users_email_normalized_fkey"', False, "SHARE UPDATE EXCLUSIVE"),
    ]
    assert steps[4].index == "users_email_normalized_key"


def test_a_dollar_quote_in_the_expression_gets_another_tag(tmp_path: Path, conn: Any) -> None:
    text = LAYOUT.format(**{**GOOD, "backfill": '"lower(email) || $opsctl$!$opsctl$"'})
    change = load_change(write(tmp_path, text))
    function = dual_write_sql(change)[0].as_string(conn)
    assert "AS $opsctl2$\n" in function and function.endswith("$opsctl2$")


# ------------------------------------------------------------------ on PostgreSQL


def test_dual_write_trigger_keeps_the_column_in_step(tmp_path: Path, conn: Any) -> None:
    conn.execute('CREATE TABLE dw_users (id serial PRIMARY KEY, email text, found int, "new" int)')
    text = LAYOUT.format(
        table="dw_users",
        name="email_normalized",
        type="text",
        backfill="\"lower(email) || '/' || coalesce(found, 0) || '/' || coalesce(new, 0) || '/' || (id % 7)\"",
        constraints="[]",
    )
    change = load_change(write(tmp_path, text, "dw.yaml"))
    conn.execute("INSERT INTO dw_users (email) VALUES ('Before@X')")
    conn.execute(expand_sql(change))
    conn.execute(expand_sql(change))  # idempotent
    with conn.transaction():
        for statement in dual_write_sql(change):
            conn.execute(statement)
    for statement in dual_write_sql(change):  # replacing it again is harmless
        conn.execute(statement)

    def value(row_id: int) -> Any:
        return conn.execute("SELECT email_normalized FROM dw_users WHERE id = %s", (row_id,)).fetchone()[0]

    # the previous app version: knows nothing of the column
    conn.execute("INSERT INTO dw_users (id, email, found, \"new\") VALUES (8, 'Old@App', 3, 4)")
    assert value(8) == "old@app/3/4/1"
    conn.execute("UPDATE dw_users SET email = 'Changed@App' WHERE id = 8")
    assert value(8) == "changed@app/3/4/1"
    assert value(1) is None  # untouched rows are the backfill's job
    conn.execute("UPDATE dw_users SET found = 5 WHERE id = 1")
    assert value(1) == "before@x/5/0/1"
    # the new app version: writes the column itself
    conn.execute("INSERT INTO dw_users (id, email, email_normalized) VALUES (9, 'New@App', 'explicit')")
    assert value(9) == "explicit"
    conn.execute("UPDATE dw_users SET email = 'Other@App', email_normalized = 'mine' WHERE id = 9")
    assert value(9) == "mine"

    for statement in drop_dual_write_sql(change):
        conn.execute(statement)
        conn.execute(statement)  # idempotent
    conn.execute("INSERT INTO dw_users (id, email) VALUES (10, 'After@Drop')")
    assert value(10) is None


def _contract_table(conn: Any, tmp_path: Path) -> Change:
    conn.execute("CREATE TABLE accounts (email text PRIMARY KEY)")
    conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
    conn.execute("INSERT INTO users SELECT g, 'U' || g || '@X' FROM generate_series(1, 500) g")
    conn.execute("INSERT INTO accounts SELECT lower(email) FROM users")
    change = load_change(write(tmp_path, VALID))
    conn.execute(expand_sql(change))
    conn.execute("UPDATE users SET email_normalized = lower(email)")
    return change


def test_contract_steps_run_are_idempotent_and_the_constraints_hold(tmp_path: Path, conn: Any) -> None:
    import psycopg
    from psycopg import errors

    change = _contract_table(conn, tmp_path)
    steps = contract_statements(change)
    assert [apply_contract_step(conn, change, step) for step in steps] == [True] * len(steps)
    assert [apply_contract_step(conn, change, step) for step in steps] == [False] * len(steps)
    for step in steps:
        assert conn.execute(step.done_query).fetchone()[0] is True, step.name

    # the statements that can run again do so harmlessly (the done queries skip the others)
    for step in steps:
        text = step.sql.as_string(conn)
        if "SET NOT NULL" in text or "DROP CONSTRAINT IF EXISTS" in text or text.endswith(('_check"', '_fkey"')):
            conn.execute(step.sql)

    attnotnull = conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_normalized'"
    ).fetchone()[0]
    assert attnotnull is True
    constraints = dict(
        conn.execute(
            "SELECT conname, contype::text || convalidated::text FROM pg_constraint WHERE conrelid = 'users'::regclass"
        )
    )
    assert constraints == {
        "users_pkey": "ptrue",
        "users_email_normalized_key": "utrue",
        "users_email_normalized_check": "ctrue",
        "users_email_normalized_fkey": "ftrue",
    }  # the NOT NULL helper check is gone

    violations = [
        ("INSERT INTO users VALUES (1001, 'a', NULL)", errors.NotNullViolation),
        ("INSERT INTO users VALUES (1002, 'a', 'u1@x')", errors.UniqueViolation),
        ("INSERT INTO users VALUES (1003, 'a', 'zz')", errors.CheckViolation),
        ("INSERT INTO users VALUES (1004, 'a', 'nobody@x')", errors.ForeignKeyViolation),
    ]
    for statement, error in violations:
        with pytest.raises(error):
            conn.execute(statement)
    conn.execute("INSERT INTO accounts VALUES ('new@x')")
    conn.execute("INSERT INTO users VALUES (1005, 'New@X', 'new@x')")
    assert isinstance(conn, psycopg.Connection)


def test_validate_refuses_rows_that_break_the_constraint(tmp_path: Path, conn: Any) -> None:
    from psycopg import errors

    change = _contract_table(conn, tmp_path)
    conn.execute("UPDATE users SET email_normalized = NULL WHERE id = 7")
    add, validate = contract_statements(change)[:2]
    assert apply_contract_step(conn, change, add) is True
    with pytest.raises(errors.CheckViolation):
        apply_contract_step(conn, change, validate)
    assert conn.execute(validate.done_query).fetchone()[0] is False


def test_an_invalid_index_left_by_a_failed_build_is_dropped_and_rebuilt(tmp_path: Path, conn: Any) -> None:
    from psycopg import errors

    change = _contract_table(conn, tmp_path)
    conn.execute("UPDATE users SET email_normalized = 'dup' WHERE id IN (1, 2)")
    build = next(s for s in contract_statements(change) if s.concurrently)
    with pytest.raises(errors.UniqueViolation):
        apply_contract_step(conn, change, build)
    assert conn.execute(invalid_index_query(change, "users_email_normalized_key")).fetchone()[0] is True
    assert conn.execute(build.done_query).fetchone()[0] is False
    conn.execute("UPDATE users SET email_normalized = lower(email) WHERE id IN (1, 2)")
    assert apply_contract_step(conn, change, build) is True
    assert conn.execute(invalid_index_query(change, "users_email_normalized_key")).fetchone()[0] is False
    assert conn.execute(build.done_query).fetchone()[0] is True


def test_a_step_waiting_for_a_lock_gives_up_at_the_lock_timeout(tmp_path: Path, conn: Any, scratch_dsn: str) -> None:
    import psycopg
    from psycopg import errors

    change = _contract_table(conn, tmp_path)
    with psycopg.connect(scratch_dsn) as holder:
        holder.execute("SELECT count(*) FROM users")  # ACCESS SHARE, held by the open transaction
        with pytest.raises(errors.LockNotAvailable):
            apply_contract_step(conn, change, contract_statements(change)[0], lock_timeout_ms=50)
        holder.rollback()


def test_probe_finds_a_broken_expression_before_the_trigger_does(tmp_path: Path, conn: Any) -> None:
    from psycopg import errors

    conn.execute("CREATE TABLE probed (id int PRIMARY KEY, email text)")

    def change(file: str, **values: str) -> Change:
        made = load_change(write(tmp_path, LAYOUT.format(**{**GOOD, "table": "probed", **values}), file))
        conn.execute(expand_sql(made))
        return made

    good = change("good.yaml")
    assert probe_sql(good).as_string(conn) == (
        'EXPLAIN UPDATE "public"."probed" SET "email_normalized" = (lower(email)) WHERE false'
    )
    conn.execute(probe_sql(good))
    assert conn.execute("SELECT count(*) FROM probed WHERE email_normalized IS NOT NULL").fetchone()[0] == 0
    with pytest.raises(errors.UndefinedColumn):
        conn.execute(probe_sql(change("typo.yaml", backfill="lower(emial)")))
    with pytest.raises(errors.DatatypeMismatch):
        conn.execute(probe_sql(change("type.yaml", name="email_ints", type="int[]")))


def test_primary_key_from_the_catalog(tmp_path: Path, conn: Any) -> None:
    conn.execute('CREATE TABLE pk_multi (region text, "Seq" bigint, v text, PRIMARY KEY ("Seq", region))')
    conn.execute("CREATE TABLE pk_none (v text)")
    multi = load_change(write(tmp_path, LAYOUT.format(**{**GOOD, "table": "pk_multi"}), "m.yaml"))
    none = load_change(write(tmp_path, LAYOUT.format(**{**GOOD, "table": "pk_none"}), "n.yaml"))
    missing = load_change(write(tmp_path, LAYOUT.format(**{**GOOD, "table": "pk_missing"}), "x.yaml"))
    assert primary_key(conn, multi) == ["Seq", "region"]
    with pytest.raises(RefusedError, match="no primary key"):
        primary_key(conn, none)
    with pytest.raises(RefusedError, match="does not exist"):
        primary_key(conn, missing)
