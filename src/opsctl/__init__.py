"""opsctl: the ops CLI for on-call engineers."""

__version__ = "0.1.0"
