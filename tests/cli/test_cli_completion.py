"""Shell completion: ``reportctl --install-completion`` for bash, zsh and fish, and the completions it gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INSTALLED = {
    "bash": (".bash_completions/reportctl.sh", ".bashrc"),
    "zsh": (".zfunc/_reportctl", ".zshrc"),
    "fish": (".config/fish/completions/reportctl.fish", None),
}


def _reportctl(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # typer finds the shell from the parent process; the test names it instead
    environment = {**os.environ, "HOME": str(home), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "reportctl", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("shell", sorted(INSTALLED))
def test_install_completion_writes_the_script_and_loads_it(shell: str, tmp_path: Path) -> None:
    shown = _reportctl("--show-completion", shell, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "_REPORTCTL_COMPLETE" in shown.stdout or "_reportctl_completion" in shown.stdout
    installed = _reportctl("--install-completion", shell, home=tmp_path)
    assert installed.returncode == 0, installed.stderr
    script, rc = INSTALLED[shell]
    assert (tmp_path / script).read_text().strip() == shown.stdout.strip()
    if rc is not None:
        assert script.split("/")[0] in (tmp_path / rc).read_text()


def test_completion_offers_commands_and_options(tmp_path: Path) -> None:
    commands = _reportctl(home=tmp_path, _REPORTCTL_COMPLETE="complete_bash", COMP_WORDS="reportctl re", COMP_CWORD="1")
    assert commands.stdout.split() == ["render", "replay"]
    options = _reportctl(
        home=tmp_path, _REPORTCTL_COMPLETE="complete_bash", COMP_WORDS="reportctl render --no", COMP_CWORD="2"
    )
    assert "--no-state" in options.stdout.split()
