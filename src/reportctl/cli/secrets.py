"""``reportctl secrets``: keep ``${secret:NAME}`` values in the OS keyring."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from reportctl.cli.output import echo

app = typer.Typer(no_args_is_help=True, help="Keep secret values in the OS keyring for ${secret:NAME} references.")

NAME_HELP = "The secret's name, as in ${secret:NAME}."


@app.callback()
def _secrets() -> None:
    """Keep secret values in the OS keyring for ${secret:NAME} references."""


@app.command("set")
def set_secret(name: Annotated[str, typer.Argument(help=NAME_HELP, show_default=False)]) -> None:
    """Store a secret: typed at a hidden prompt on a terminal, else read from standard input."""
    from reportctl.secrets import check_name, store_secret

    check_name(name)
    if sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        from reportctl.errors import UsageError

        raise UsageError(f"no value given for secret '{name}'")
    store_secret(name, value)
    from reportctl.state.audit import record_secret_change

    record_secret_change("secret.set", name)
    echo(f"stored secret '{name}' in the OS keyring")


@app.command("get")
def get_secret(
    name: Annotated[str, typer.Argument(help=NAME_HELP, show_default=False)],
    show: Annotated[bool, typer.Option("--show", help="Print the value itself.")] = False,
) -> None:
    """Say where a secret comes from (the environment or the keyring); --show prints its value."""
    import os

    from reportctl.errors import ExitCode
    from reportctl.secrets import check_name, env_name, keyring_backend, stored_secret

    check_name(name)
    from_env = os.environ.get(env_name(name))
    from_keyring = stored_secret(name) if keyring_backend() else None
    value = from_env if from_env is not None else from_keyring
    if value is None:
        echo(f"secret '{name}' is not set (neither {env_name(name)} nor the OS keyring)")
        raise typer.Exit(int(ExitCode.FAILED))
    if show:
        echo(value)
        return
    where = f"the environment variable {env_name(name)}" if from_env is not None else "the OS keyring"
    echo(f"secret '{name}' is set, from {where}")


@app.command("delete")
def delete_secret(name: Annotated[str, typer.Argument(help=NAME_HELP, show_default=False)]) -> None:
    """Remove a secret from the OS keyring."""
    from reportctl.secrets import delete_secret as delete

    delete(name)
    from reportctl.state.audit import record_secret_change

    record_secret_change("secret.delete", name)
    echo(f"deleted secret '{name}' from the OS keyring")
