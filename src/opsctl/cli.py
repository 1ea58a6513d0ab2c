"""The root app: global options, the command groups, and the error boundary.

Command modules (``opsctl.commands.*``) are thin and cheap to import; engines
and heavy clients are imported inside the commands that use them.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum

import typer

from opsctl.errors import ExitCode, OpsctlError

app = typer.Typer(
    name="opsctl",
    help="The ops CLI for on-call engineers: incidents, deploys, migrations, restores and DR drills.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no <bool> on flags, no rich import for --help
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        from opsctl import __version__

        typer.echo(f"opsctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None, "--config", "-c", envvar="OPSCTL_CONFIG", help="Config file.", metavar="PATH"
    ),
    env: str | None = typer.Option(
        None, "--env", "-e", envvar="OPSCTL_ENV", help="Environment (default: the config's).", metavar="NAME"
    ),
    output: OutputFormat = typer.Option(
        OutputFormat.table, "--output", "-o", envvar="OPSCTL_OUTPUT", help="Output format.", case_sensitive=False
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Answer yes to confirmations."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail on stderr (-vv for debug)."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also NO_COLOR=1)."),
    log_format: LogFormat = typer.Option(
        LogFormat.text,
        "--log-format",
        envvar="OPSCTL_LOG_FORMAT",
        help="Log lines on stderr as text or JSON.",
        case_sensitive=False,
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Global options apply to every command."""
    from opsctl import logging as oplog
    from opsctl import tracing
    from opsctl.context import Context
    from opsctl.output import Output

    tracing.start_trace()
    oplog.setup(log_format.value, verbose)
    oplog.getLogger("opsctl.cli").debug("opsctl %s", " ".join(sys.argv[1:]))
    context = Context(
        config_path=config,
        env_name=env,
        output=Output(output.value, no_color=no_color),
        dry_run=dry_run,
        yes=yes,
        verbose=verbose,
        log_format=log_format.value,
    )
    ctx.obj = context
    ctx.call_on_close(context.close)
    if env is not None and ctx.invoked_subcommand not in ("completion", None):
        from opsctl.errors import ConfigError

        try:
            context.check_env()
        except ConfigError:
            pass  # the command itself reports a broken config, with every problem located


def _register() -> None:
    from opsctl.commands import audit, cache, completion, config, db, deploy, drill, incident, inventory, runs

    app.add_typer(config.app, name="config", help="Check and show the configuration.")
    app.add_typer(incident.app, name="incident", help="Declare and run incidents (PagerDuty or local).")
    app.add_typer(deploy.app, name="deploy", help="Canary and blue/green deploys on Kubernetes, judged by Prometheus.")
    app.add_typer(db.app, name="db", help="Database work: zero-downtime migrations and column changes.")
    app.add_typer(
        drill.app, name="drill", help="DR drills: failover and restore, measured against the tier; status, reports."
    )
    app.add_typer(cache.app, name="cache", help="Redis caches: the TTL policy audit, event-based invalidation.")
    app.add_typer(cache.ratelimit, name="ratelimit", help="Rate-limit counters on Redis: show and reset one client's.")
    app.add_typer(runs.app, name="runs", help="What is running now across the team, and each run's timeline.")
    inventory.register(app)
    audit.register(app)
    completion.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every outcome into one exit code."""
    sys.exit(run(sys.argv[1:] if argv is None else argv))


_GLOBAL_FLAGS = {"--dry-run", "--yes", "-y", "--no-color"}
_GLOBAL_VALUES = {"-o", "--output", "--env", "-e"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let global options follow the subcommand too (``opsctl incident declare … --dry-run -o json``),
    as they do in kubectl: they are moved in front of the first command word."""
    takes_value = _GLOBAL_VALUES | {"-c", "--config", "--log-format"}
    first, i = None, 0
    while i < len(argv):
        if argv[i] in takes_value:
            i += 2
            continue
        if not argv[i].startswith("-"):
            first = i
            break
        i += 1
    if first is None:
        return argv
    moved: list[str] = []
    rest: list[str] = []
    tail = argv[first:]
    i = 0
    while i < len(tail):
        arg = tail[i]
        if arg == "--":
            rest.extend(tail[i:])
            break
        if arg in _GLOBAL_FLAGS:
            moved.append(arg)
        elif arg in _GLOBAL_VALUES and i + 1 < len(tail):
            moved.extend(tail[i : i + 2])
            i += 1
        elif "=" in arg and arg.split("=", 1)[0] in ("--output", "--env"):
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return argv[:first] + moved + rest


def run(argv: list[str]) -> int:
    from typer._click.exceptions import ClickException

    debug = os.environ.get("OPSCTL_DEBUG", "") not in ("", "0")
    if "_OPSCTL_COMPLETE" in os.environ:
        from typer._completion_classes import completion_init

        completion_init()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=hoist_global_options(argv), prog_name="opsctl", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort) as exc:
        if debug:
            _traceback()
        _stderr("interrupted" + (f" ({exc.signame})" if hasattr(exc, "signame") else ""))
        return int(ExitCode.INTERRUPTED)
    except OpsctlError as exc:
        if debug:
            _traceback()
        from opsctl.errors import ConfigError

        prefix = "" if isinstance(exc, ConfigError) else "error: "
        for line in exc.lines():
            _stderr(prefix + line)
        return int(exc.exit_code)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as exc:
        if debug:
            _traceback()
        from opsctl.redact import redact

        _stderr(
            f"error: internal error ({type(exc).__name__}: {redact(str(exc))}); rerun with OPSCTL_DEBUG=1 for a traceback and report it"
        )
        return int(ExitCode.FAILED)
    if isinstance(code, int) and code == ExitCode.INTERRUPTED:
        # typer turns a KeyboardInterrupt into this return value; it must not become exit 0.
        _stderr("interrupted")
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def _traceback() -> None:
    """OPSCTL_DEBUG=1: the traceback on stderr (redacted); the exit code stays the documented one."""
    import traceback

    from opsctl.redact import redact

    sys.stderr.write(redact(traceback.format_exc()))
    sys.stderr.flush()


def _stderr(message: str) -> None:
    from opsctl.output import printable
    from opsctl.redact import redact

    text = printable(redact(message))
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
