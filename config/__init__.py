"""Packaged as ``opsctl.defaults``: the example config and its JSON schema ship with opsctl."""
