"""The CLI surface: one thin module per command group (packaged as ``opsctl.commands``)."""
