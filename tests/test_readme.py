"""The README opens with two commands that a new user pastes; CI must run the second."""

import re

from tests.conftest import REPO_ROOT


def _opening_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert first_block is not None, "README must open with a bash code block"
    return [
        line
        for line in first_block.group(1).splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_readme_opens_with_a_run_command_and_a_test_command() -> None:
    run, test = _opening_commands()
    assert "dlsms seed --demo" in run and run.rstrip().endswith("dlsms serve")
    assert test.rstrip().endswith("pytest")


def test_ci_runs_the_readmes_test_command_verbatim() -> None:
    _, test = _opening_commands()
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines
