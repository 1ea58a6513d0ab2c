"""The migration linter: every rule fails on its unsafe form and passes on its recipe (or on a table created
earlier in the same file), with exact lines; chunks, syntax errors, suppression and hostile input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from opsctl.migrate.lint import RULES, Finding, lint_migration, lint_migrations
from opsctl.migrate.source import Migration, load

# The existing schema: created by the first migration, so every later file sees existing tables.
BASE = """\
CREATE TABLE users (id bigint, email text, name text, org_id bigint);
CREATE TABLE orgs (id bigint PRIMARY KEY);
CREATE INDEX users_email_idx ON users (email);
CREATE SCHEMA archive;
"""
P = "SET lock_timeout = '2s';\n-- the statement under test is on line 3\n"


def migrations(tmp_path: Path, *texts: str) -> list[Migration]:
    """Plain layout: 0001_m1.sql, 0002_m2.sql … in a folder under tmp_path, read by source.load."""
    root = tmp_path / "migrations"
    root.mkdir(parents=True)
    for number, text in enumerate(texts, start=1):
        (root / f"{number:04d}_m{number}.sql").write_text(text, encoding="utf-8")
    folder = load(root)
    assert folder.layout == "plain" and len(folder.migrations) == len(texts)
    return folder.migrations


def lint(tmp_path: Path, *texts: str) -> list[Finding]:
    return lint_migrations(migrations(tmp_path, BASE, *texts))


def pairs(findings: list[Finding]) -> list[tuple[str, str, int]]:
    return [(f.file, f.rule, f.line) for f in findings]


# rule, severity, failing file (after BASE), lines of that rule's findings, passing files (after BASE)
CASES: list[tuple[str, str, str, list[int], tuple[str, ...]]] = [
    ("syntax-error", "forbidden", P + "ALTER TABLE users ADD COLUM x int", [3],
     (P + "ALTER TABLE users ADD COLUMN x int",)),
    ("drop-table", "forbidden", P + "DROP TABLE users", [3],
     (P + "CREATE TABLE scratch (id int);\nDROP TABLE scratch",)),
    ("drop-column", "forbidden", P + "ALTER TABLE users DROP COLUMN name", [3],
     (P + "CREATE TABLE t2 (a int, b int);\nALTER TABLE t2 DROP COLUMN b",)),
    ("drop-schema", "forbidden", P + "DROP SCHEMA archive CASCADE", [3],
     (P + "CREATE SCHEMA tmp;\nDROP SCHEMA tmp",)),
    ("drop-database", "forbidden", P + "DROP DATABASE legacy", [3], (P + "DROP VIEW IF EXISTS legacy_view",)),
    ("truncate", "forbidden", P + "TRUNCATE users, orgs", [3],
     (P + "CREATE TABLE staging (id int);\nTRUNCATE staging",)),
    ("delete-without-where", "forbidden", P + "DELETE FROM users", [3], (P + "DELETE FROM users WHERE id = 1",)),
    ("update-without-where", "unsafe", P + "UPDATE users SET name = ''", [3],
     (P + "UPDATE users SET name = '' WHERE id BETWEEN 1 AND 1000",)),
    ("set-not-null", "unsafe", P + "ALTER TABLE users ALTER COLUMN email SET NOT NULL", [3], (
        P + "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID",
        P + "ALTER TABLE users VALIDATE CONSTRAINT users_email_nn",
        P + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_email_nn",
    )),
    ("constraint-not-valid-missing", "unsafe",
     P + "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id)", [3], (
         P + "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID",
         P + "ALTER TABLE users VALIDATE CONSTRAINT users_org_fk",
     )),
    ("unique-constraint", "unsafe", P + "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)", [3], (
        P + "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)",
        P + "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key",
    )),
    ("add-primary-key", "unsafe", P + "ALTER TABLE users ADD PRIMARY KEY (id)", [3], (
        P + "CREATE UNIQUE INDEX CONCURRENTLY users_pkey ON users (id)",
        P + "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey",
    )),
    ("index-not-concurrently", "unsafe", P + "CREATE INDEX users_name_idx ON users (name)", [3],
     (P + "CREATE INDEX CONCURRENTLY users_name_idx ON users (name)",)),
    ("drop-index-not-concurrently", "unsafe", P + "DROP INDEX users_email_idx", [3],
     (P + "DROP INDEX CONCURRENTLY users_email_idx",)),
    ("reindex-not-concurrently", "unsafe", P + "REINDEX INDEX users_email_idx", [3],
     (P + "REINDEX INDEX CONCURRENTLY users_email_idx",)),
    ("column-type-change", "unsafe", P + "ALTER TABLE users ALTER COLUMN org_id TYPE text", [3],
     (P + "CREATE TABLE t2 (a int);\nALTER TABLE t2 ALTER COLUMN a TYPE bigint",)),
    ("rename-column", "unsafe", P + "ALTER TABLE users RENAME COLUMN name TO full_name", [3],
     (P + "ALTER TABLE users ADD COLUMN full_name text",)),
    ("rename-table", "unsafe", P + "ALTER TABLE users RENAME TO accounts", [3],
     (P + "CREATE TABLE t2 (a int);\nALTER TABLE t2 RENAME TO t3;\nALTER TABLE t3 ADD COLUMN b int NOT NULL",)),
    ("volatile-default", "unsafe", P + "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()", [3],
     (P + "ALTER TABLE users ADD COLUMN created_at timestamptz DEFAULT now()",)),
    ("stored-generated-column", "unsafe",
     P + "ALTER TABLE users ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) STORED", [3],
     (P + "ALTER TABLE users ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) VIRTUAL",)),
    ("not-null-without-default", "unsafe", P + "ALTER TABLE users ADD COLUMN active boolean NOT NULL", [3],
     (P + "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true",)),
    ("validate-same-transaction", "unsafe",
     P + "ALTER TABLE users ADD CONSTRAINT id_pos CHECK (id > 0) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT id_pos",
     [4], (
         P + "ALTER TABLE users ADD CONSTRAINT id_pos CHECK (id > 0) NOT VALID",
         P + "ALTER TABLE users VALIDATE CONSTRAINT id_pos",
     )),
    ("concurrently-in-transaction", "unsafe",
     P + "BEGIN;\nCREATE INDEX CONCURRENTLY users_name_idx ON users (name);\nCOMMIT", [4],
     (P + "CREATE INDEX CONCURRENTLY users_name_idx ON users (name)",)),
    ("explicit-transaction", "unsafe", P + "BEGIN;\nALTER TABLE users ADD COLUMN x int;\nCOMMIT", [3, 5],
     (P + "ALTER TABLE users ADD COLUMN x int",)),
    ("vacuum-full", "unsafe", P + "VACUUM FULL users", [3], (P + "VACUUM (ANALYZE) users",)),
    ("cluster", "unsafe", P + "CLUSTER users USING users_email_idx", [3],
     (P + "CREATE TABLE t2 (a int);\nCREATE INDEX t2_a ON t2 (a);\nCLUSTER t2 USING t2_a",)),
    ("add-serial-column", "unsafe", P + "ALTER TABLE users ADD COLUMN seq bigserial", [3],
     (P + "ALTER TABLE users ADD COLUMN seq bigint",)),
    ("missing-lock-timeout", "advice",
     "-- no lock_timeout here\nALTER TABLE users ADD COLUMN x int;\nALTER TABLE orgs ADD COLUMN y int", [2],
     ("SET LOCAL lock_timeout = '3s';\nALTER TABLE users ADD COLUMN x int;\nALTER TABLE orgs ADD COLUMN y int",)),
]  # fmt: skip


def test_every_rule_has_a_case_and_a_catalogue_entry() -> None:
    assert sorted(rule for rule, *_ in CASES) == sorted(RULES)
    for rule, (severity, why, recipe) in RULES.items():
        assert severity in ("forbidden", "unsafe", "advice"), rule
        assert why.strip() and recipe.strip() and "\n" not in why + recipe, rule


def test_the_base_schema_is_clean(tmp_path: Path) -> None:
    assert lint_migrations(migrations(tmp_path, BASE)) == []


@pytest.mark.parametrize(("rule", "severity", "bad", "lines", "good"), CASES, ids=[c[0] for c in CASES])
def test_rule_fails_on_the_unsafe_form(
    tmp_path: Path, rule: str, severity: str, bad: str, lines: list[int], good: tuple[str, ...]
) -> None:
    found = [f for f in lint(tmp_path, bad) if f.rule == rule]
    assert [(f.file, f.line, f.severity) for f in found] == [("0002_m2.sql", line, severity) for line in lines]
    assert all(f.why == RULES[rule][1] and f.recipe == RULES[rule][2] and f.message for f in found)


@pytest.mark.parametrize(("rule", "severity", "bad", "lines", "good"), CASES, ids=[c[0] for c in CASES])
def test_rule_passes_on_the_recipe(
    tmp_path: Path, rule: str, severity: str, bad: str, lines: list[int], good: tuple[str, ...]
) -> None:
    assert [f for f in lint(tmp_path, *good) if f.rule == rule] == []


def test_line_numbers_in_a_multi_line_file_with_comments(tmp_path: Path) -> None:
    text = """\
-- 0002: tokens
SET lock_timeout = '2s';

/* a block
   comment; with a semicolon */
ALTER TABLE users
    ADD COLUMN token uuid
    DEFAULT gen_random_uuid();

-- two statements on one line
DROP TABLE orgs; DELETE FROM users;
UPDATE users
   SET name = 'x';
"""
    found = lint(tmp_path, text)
    assert [(f.rule, f.line, f.severity) for f in found] == [
        ("volatile-default", 6, "unsafe"),
        ("drop-table", 11, "forbidden"),
        ("delete-without-where", 11, "forbidden"),
        ("update-without-where", 12, "unsafe"),
    ]
    assert (
        found[0].message == "adds users.token with DEFAULT gen_random_uuid(), which may be volatile (forces a rewrite)"
    )
    assert found[0].statement == "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()"
    assert found[1].message == "drops table orgs" and found[1].statement == "DROP TABLE orgs"
    assert found[3].statement == "UPDATE users SET name = 'x'"


def _drizzle(tmp_path: Path, *files: str) -> list[Migration]:
    root = tmp_path / "drizzle"
    (root / "meta").mkdir(parents=True)
    entries = []
    for idx, text in enumerate(files):
        tag = f"{idx:04d}_step{idx}"
        (root / f"{tag}.sql").write_text(text, encoding="utf-8")
        entries.append({"idx": idx, "version": "7", "when": 1700000000000 + idx, "tag": tag, "breakpoints": True})
    (root / "meta" / "_journal.json").write_text(
        json.dumps({"version": "7", "dialect": "postgresql", "entries": entries})
    )
    folder = load(root)
    assert folder.layout == "drizzle"
    return folder.migrations


def test_drizzle_chunks_keep_file_lines(tmp_path: Path) -> None:
    second = (
        'ALTER TABLE "users" ADD COLUMN "age" integer NOT NULL;--> statement-breakpoint\n'
        'CREATE INDEX "users_age_idx" ON "users" USING btree ("age");--> statement-breakpoint\n'
        "\n"
        'ALTER TABLE "users"\n'
        '  DROP COLUMN "name";'
    )
    found = lint_migrations(_drizzle(tmp_path, BASE, second))
    assert pairs(found) == [
        ("0001_step1.sql", "not-null-without-default", 1),
        ("0001_step1.sql", "missing-lock-timeout", 1),
        ("0001_step1.sql", "index-not-concurrently", 2),
        ("0001_step1.sql", "drop-column", 4),
    ]
    assert found[2].message == "CREATE INDEX users_age_idx on users without CONCURRENTLY"
    assert found[3].message == "drops column users.name"


def test_a_syntax_error_mid_file_is_a_finding_and_later_chunks_are_linted(tmp_path: Path) -> None:
    second = (
        "SET lock_timeout = '1s';\n--> statement-breakpoint\n"
        "ALTER TABLE users\n  ADD COLUMN age integr erm;\n--> statement-breakpoint\n"
        "-- still linted\nDROP TABLE orgs;"
    )
    found = lint_migrations(_drizzle(tmp_path, BASE, second))
    assert [(f.rule, f.line, f.severity) for f in found] == [
        ("syntax-error", 4, "forbidden"),
        ("drop-table", 7, "forbidden"),
    ]
    assert "syntax error" in found[0].message and found[0].statement == "ADD COLUMN age integr erm;"


def test_a_syntax_error_in_a_plain_file_points_at_its_line(tmp_path: Path) -> None:
    found = lint(tmp_path, "SELECT 1;\n\nSELEC 2;\nDROP TABLE users;\n")
    assert [(f.rule, f.line) for f in found] == [("syntax-error", 3)]


def test_validate_in_the_same_file_vs_the_next_file(tmp_path: Path) -> None:
    add = P + "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;\n"
    validate = "ALTER TABLE users VALIDATE CONSTRAINT users_org_fk;\n"
    one = lint_migrations(migrations(tmp_path / "one", BASE, add + validate))
    assert pairs(one) == [("0002_m2.sql", "validate-same-transaction", 4)]
    two = lint_migrations(migrations(tmp_path / "two", BASE, add, P + validate))
    assert two == []


def test_set_not_null_after_an_unnamed_check_validated_in_an_earlier_file(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        P + "ALTER TABLE users ADD CHECK (email IS NOT NULL) NOT VALID;",
        P + "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
        "ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
    )
    assert pairs(found) == [("0003_m3.sql", "set-not-null", 5)]
    assert found[0].message == "SET NOT NULL on users.name without a validated CHECK (name IS NOT NULL)"


def test_set_not_null_needs_the_check_validated_not_just_added(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        P + "ALTER TABLE users ADD CONSTRAINT nn CHECK (email IS NOT NULL) NOT VALID;",
        P + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    )
    assert pairs(found) == [("0003_m3.sql", "set-not-null", 3)]


def test_suppression_comment_silences_the_named_rules_of_the_next_statement_only(tmp_path: Path) -> None:
    text = """\
SET lock_timeout = '2s';
-- opsctl-lint: ignore index-not-concurrently
CREATE INDEX users_name ON users (name);
CREATE INDEX users_email ON users (email);
-- opsctl-lint: ignore rename-column, column-type-change
-- approved in CHANGE-123

ALTER TABLE users RENAME COLUMN a TO b;
-- opsctl-lint: ignore rename-column
ALTER TABLE users ALTER COLUMN c TYPE bigint;
"""
    assert [(f.rule, f.line) for f in lint(tmp_path, text)] == [
        ("index-not-concurrently", 4),
        ("column-type-change", 10),
    ]


def test_suppression_cannot_silence_a_data_destroying_statement(tmp_path: Path) -> None:
    text = "SET lock_timeout = '2s';\n-- opsctl-lint: ignore drop-column\nALTER TABLE users DROP COLUMN name;\n"
    text += "-- opsctl-lint: ignore drop-table, truncate\nTRUNCATE users;\n"
    assert [(f.rule, f.line) for f in lint(tmp_path, text)] == [("drop-column", 3), ("truncate", 5)]


def test_suppression_cannot_silence_a_syntax_error(tmp_path: Path) -> None:
    found = lint(tmp_path, "-- opsctl-lint: ignore syntax-error\nDROP TABEL users;")
    assert [(f.rule, f.line) for f in found] == [("syntax-error", 2)]


def test_a_table_created_by_an_earlier_migration_is_existing(tmp_path: Path) -> None:
    create = "CREATE TABLE events (id bigint, kind text);\nCREATE INDEX events_kind ON events (kind);\n"
    alter = "ALTER TABLE events ADD COLUMN at timestamptz NOT NULL;\nDROP TABLE events;\n"
    ms = migrations(tmp_path, create, alter)
    assert lint_migration(ms[0]) == []
    assert pairs(lint_migrations(ms)) == [
        ("0002_m2.sql", "not-null-without-default", 1),
        ("0002_m2.sql", "missing-lock-timeout", 1),
        ("0002_m2.sql", "drop-table", 2),
    ]
    # the same statements after the CREATE in one file touch a new table: nothing to report
    assert lint_migration(migrations(tmp_path / "one", create + alter)[0]) == []


def test_lint_migration_alone_treats_tables_as_existing(tmp_path: Path) -> None:
    (m,) = migrations(tmp_path, "ALTER TABLE users ALTER COLUMN email TYPE varchar(10);")
    assert [(f.rule, f.line) for f in lint_migration(m)] == [("column-type-change", 1), ("missing-lock-timeout", 1)]


@pytest.mark.parametrize(
    ("default", "flagged"),
    [
        ("now()", None),
        ("CURRENT_TIMESTAMP", None),
        ("'x'::text", None),
        ("0", None),
        ("'{}'::jsonb", None),
        ("ARRAY[]::text[]", None),
        ("now() + interval '1 day'", None),
        ("random()", "random()"),
        ("clock_timestamp()", "clock_timestamp()"),
        ("uuid_generate_v4()", "uuid_generate_v4()"),
        ("nextval('users_seq')", "nextval()"),
        ("(random() * 10)::int", "random()"),
        ("myschema.now()", "myschema.now()"),
    ],
)
def test_volatile_defaults(tmp_path: Path, default: str, flagged: str | None) -> None:
    found = [
        f
        for f in lint(tmp_path, P + f"ALTER TABLE users ADD COLUMN c text DEFAULT {default}")
        if f.rule == "volatile-default"
    ]
    if flagged is None:
        assert found == []
    else:
        assert [(f.line, f.message) for f in found] == [
            (3, f"adds users.c with DEFAULT {flagged}, which may be volatile (forces a rewrite)")
        ]


def test_add_column_shapes_on_an_existing_table(tmp_path: Path) -> None:
    text = P + (
        "ALTER TABLE users ADD COLUMN id2 bigint GENERATED ALWAYS AS IDENTITY;\n"
        "ALTER TABLE users ADD COLUMN org2 bigint REFERENCES orgs (id);\n"
        "ALTER TABLE users ADD COLUMN pk bigserial PRIMARY KEY;\n"
        "ALTER TABLE users ADD COLUMN code text UNIQUE;\n"
        "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0 CHECK (n >= 0);\n"
    )
    assert [(f.rule, f.line) for f in lint(tmp_path, text)] == [
        ("add-serial-column", 3),
        ("constraint-not-valid-missing", 4),
        ("add-serial-column", 5),
        ("add-primary-key", 5),
        ("unique-constraint", 6),
        ("constraint-not-valid-missing", 7),
    ]


def test_data_modifying_cte_and_where_true(tmp_path: Path) -> None:
    text = (
        P
        + "WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone;\nUPDATE orgs SET id = id WHERE true;"
    )
    assert [(f.rule, f.line) for f in lint(tmp_path, text)] == [
        ("delete-without-where", 3),
        ("update-without-where", 4),
    ]


@pytest.mark.parametrize(
    ("setting", "advised"),
    [
        ("SET lock_timeout = '5s';", False),
        ("SET LOCAL lock_timeout TO 5000;", False),
        ("SELECT set_config('lock_timeout', '5s', true);", False),
        ("SET lock_timeout = 0;", True),
        ("SET lock_timeout = '5s'; RESET lock_timeout;", True),
        ("SET statement_timeout = '5s';", True),
    ],
)
def test_lock_timeout_settings(tmp_path: Path, setting: str, advised: bool) -> None:
    found = lint(tmp_path, f"{setting}\nCREATE INDEX users_name_idx ON users (name);")
    assert [(f.rule, f.line) for f in found if f.rule == "missing-lock-timeout"] == (
        [("missing-lock-timeout", 2)] if advised else []
    )


def test_lock_timeout_set_after_the_locking_statement_is_too_late(tmp_path: Path) -> None:
    found = lint(
        tmp_path, "ALTER TABLE users ADD COLUMN x int;\nSET lock_timeout = '1s';\nALTER TABLE orgs ADD COLUMN y int;"
    )
    assert [(f.rule, f.line, f.message) for f in found] == [
        ("missing-lock-timeout", 1, "locks users with no SET lock_timeout earlier in the file")
    ]


def test_finding_to_dict_and_printable_statement(tmp_path: Path) -> None:
    hostile = 'ALTER TABLE users DROP COLUMN "evil\n\x1b[31mred\u202e\t";'
    long = "DELETE FROM users " + "/* " + "x" * 400 + " */"
    found = lint(tmp_path, P + hostile + "\n" + long + ";")
    assert [(f.rule, f.line) for f in found] == [
        ("drop-column", 3),
        ("delete-without-where", 5),
    ]  # the identifier spans two lines
    evil = found[0]
    assert evil.statement == 'ALTER TABLE users DROP COLUMN "evil [31mred "'
    assert evil.message == "drops column users.evil [31mred"
    assert all(ch.isprintable() for f in found for ch in f.statement + f.message)
    assert len(found[1].statement) == 200 and found[1].statement.endswith("…")
    as_dict = evil.to_dict()
    assert as_dict == {
        "file": "0002_m2.sql", "line": 3, "rule": "drop-column", "severity": "forbidden",
        "message": evil.message, "why": RULES["drop-column"][1], "recipe": RULES["drop-column"][2],
        "statement": evil.statement,
    }  # fmt: skip
    json.dumps(as_dict)


def test_a_nul_byte_is_a_syntax_error_and_does_not_hide_what_follows(tmp_path: Path) -> None:
    found = lint(tmp_path, P + "SELECT 1;\n\x00 DROP TABLE users;")
    assert [(f.rule, f.line) for f in found] == [("syntax-error", 4), ("drop-table", 4)]


def test_ten_thousand_statements_lint_quickly(tmp_path: Path) -> None:
    text = "".join(f"ALTER TABLE users ADD COLUMN c{i} int;\n" for i in range(10_000))
    started = time.monotonic()
    found = lint(tmp_path, text)
    assert time.monotonic() - started < 10
    assert [(f.rule, f.line) for f in found] == [("missing-lock-timeout", 1)]


def test_a_5mb_deeply_nested_statement_is_a_syntax_error_not_a_crash(tmp_path: Path) -> None:
    deep = "ALTER TABLE users ADD COLUMN c int DEFAULT 1" + "+1" * 2_500_000
    started = time.monotonic()
    found = lint(tmp_path, P + deep + ";\n")
    assert time.monotonic() - started < 20
    assert [(f.rule, f.line) for f in found] == [("syntax-error", 3)]  # and the SET before it was parsed
    assert "stack depth" in found[0].message and len(found[0].statement) <= 200


def test_a_large_flat_statement_is_linted(tmp_path: Path) -> None:
    rows = ",".join(f"({i}, 'user{i}@example.com', 'n', NULL)" for i in range(30_000))
    found = lint(tmp_path, P + f"INSERT INTO users VALUES {rows};\nDELETE FROM users;")
    assert [(f.rule, f.line) for f in found] == [("delete-without-where", 4)]
