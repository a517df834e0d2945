"""The README's Python examples run as written, and its test command is the one CI runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_python_blocks_run():
    blocks = _fenced_blocks(README.read_text(), "python")
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_names_the_test_command_ci_runs():
    text = README.read_text()
    lines = [
        line.strip()
        for block in _fenced_blocks(text, "bash")
        for line in block.splitlines()
        if line.strip().startswith("python -m pytest")
    ]
    assert len(lines) == 1, f"the README should give one test command in a bash block, found {lines}"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines[0] in ci, f"CI (.ci/run) does not run the README's test command {lines[0]!r}"
