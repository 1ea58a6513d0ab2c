"""Backups and point-in-time restores: what exists (pgBackRest, RDS), the restorable window, and
the manual's backup policy checked against it."""
