"""Zero-downtime schema migrations: plain SQL and Drizzle folders (lint, status, plan, run) and
column changes in four phases (expand, dual-write, backfill, contract) on PostgreSQL."""
