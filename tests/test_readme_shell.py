"""The README's shell examples are copy-pasteable: checked statically over its ```sh blocks."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
ASSIGNMENT = re.compile(r"(?:^|\s)(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


def _commands() -> list[str]:
    """Every command of the fenced sh blocks, with backslash continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    commands: list[str] = []
    for block in blocks:
        joined = re.sub(r"\\\n", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip()]
    return commands


def test_readme_has_shell_examples() -> None:
    assert any(command.startswith("curl") for command in _commands())


def test_every_curl_with_a_body_sends_json_content_type() -> None:
    missing = [
        command
        for command in _commands()
        if command.startswith("curl")
        and re.search(r"\s-d\s", command)
        and "Content-Type: application/json" not in command
        and '-H "$J"' not in command
    ]
    assert missing == []


def test_no_variable_is_used_on_the_line_that_assigns_it() -> None:
    # `A=1 B="$A"` on one line expands $A before it is set (the command's own prefix).
    broken = []
    for command in _commands():
        if command.startswith("#"):
            continue
        names = ASSIGNMENT.findall(command.split(";")[0])
        if len(names) > 1 and any(f"${name}" in command for name in names):
            broken.append(command)
    assert broken == []
