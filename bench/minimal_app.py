"""The baseline: the smallest typer app with one command, run the same way as opsctl."""

import typer

app = typer.Typer()


@app.callback()
def root(verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """A minimal app."""


@app.command()
def hello() -> None:
    """Print one line."""
    typer.echo("hello")


if __name__ == "__main__":
    app()
