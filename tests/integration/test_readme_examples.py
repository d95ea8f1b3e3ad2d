"""The README's shell examples, run against a real `turnout serve`, so they stay true.

Covers the sections "Migration workflow" and "Declarative configuration, backup and
restore" (up to their first subsection). Every fenced `sh` block of those sections
runs, in document order, in one bash session with `$A` (the admin URL), `$TOKEN` (its
token), `$H` (the Authorization header), `$TURNOUT_DATABASE_URL` (the server's
database), `$B_DATABASE_URL` and `$C_DATABASE_URL` (new, empty databases) set, and
`turnout` on PATH.

A command may be followed by `# => <text>` lines: each is what the command's output
(stdout and stderr) contains, `...` standing for anything, compared without
whitespace. `# => exit N` expects exit status N; any other command must exit 0.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from turnout.testing.processes import TurnoutProcess

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = ("Migration workflow", "Declarative configuration, backup and restore")
TOKEN = "integration-test-token"  # as in conftest.py


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


def section(text: str, title: str) -> str:
    """The text of `## title` up to the next heading (`## ` or `### `: subsections such
    as "Importing from Kong" have their own owners and tests)."""
    start = text.index(f"\n## {title}\n")
    end = re.compile(r"^###? ", re.MULTILINE).search(text, start + len(title) + 4)
    return text[start : end.start() if end else len(text)]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def steps(block: str) -> list[Step]:
    """Commands (joined across `\\` and open single quotes) with their expectations."""
    out: list[Step] = []
    pending = ""
    for line in block.splitlines():
        if pending:
            pending += "\n" + line
        elif line.startswith("# => "):
            answer = line.removeprefix("# => ")
            if m := re.fullmatch(r"exit (\d+)", answer):
                out[-1].exit_code = int(m.group(1))
            else:
                out[-1].expected.append(answer)
            continue
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        else:
            pending = line
        if pending.count("'") % 2 == 0 and not pending.endswith("\\"):
            out.append(Step(pending))
            pending = ""
    assert not pending, f"unterminated command in README: {pending!r}"
    return out


def contains(output: str, expected: str) -> bool:
    """`expected`'s parts (split at `...`) appear in order in `output`, whitespace aside."""
    flat = re.sub(r"\s+", "", output)
    at = 0
    for part in (re.sub(r"\s+", "", p) for p in expected.split("...")):
        found = flat.find(part, at)
        if found == -1:
            return False
        at = found + len(part)
    return True


def test_steps_parser_joins_lines_and_reads_expectations() -> None:
    block = (
        'curl -s $A/x --json \'{"a": 1,\n  "b": 2}\'\n# => {"a": 1, ...}\n'
        "# a comment\nturnout x \\\n  --flag\n# => exit 1\n"
    )
    assert steps(block) == [
        Step('curl -s $A/x --json \'{"a": 1,\n  "b": 2}\'', ['{"a": 1, ...}']),
        Step("turnout x \\\n  --flag", [], 1),
    ]
    assert contains('{"a":1,"b":2}', '{"a": 1, ...}') and not contains("{}", '{"a": 1}')


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readme_examples_answer_as_documented(
    turnout: TurnoutProcess, tmp_path: Path, turnout_env: dict[str, str]
) -> None:
    text = README.read_text()
    plan = [s for title in SECTIONS for b in sh_blocks(section(text, title)) for s in steps(b)]
    assert len(plan) > 20 and all(s.command for s in plan)
    script = ["exec 2>&1"]
    for i, step in enumerate(plan):
        script += [f"echo '@@step {i}@@'", step.command, f'echo "@@rc {i} $?@@"']
    env = {
        **os.environ,
        **turnout_env,
        "A": turnout.admin_url,
        "H": f"Authorization: Bearer {TOKEN}",
        "TOKEN": TOKEN,
        "TURNOUT_DATABASE_URL": turnout.database_url,
        "B_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
        "C_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    run = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outputs = re.split(r"^@@step \d+@@\n", run.stdout, flags=re.MULTILINE)[1:]
    assert len(outputs) == len(plan), run.stdout[-2000:]
    for i, (step, output) in enumerate(zip(plan, outputs, strict=True)):
        rc = re.search(rf"@@rc {i} (\d+)@@", output)
        assert rc is not None, output
        answer = output[: rc.start()]
        assert int(rc.group(1)) == step.exit_code, f"{step.command}\n{answer}"
        for expected in step.expected:
            assert contains(answer, expected), f"{step.command}\nexpected {expected}\n{answer}"
