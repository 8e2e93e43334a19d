"""scripts/runner.py, the real seam, on plain shell commands: what reaches the
caller, what is dropped, and the statuses the scripts act on."""

from pathlib import Path

import pytest

from scripts.runner import NOT_FOUND, CommandFailed, Runner

BOTH = "echo out; echo err >&2"


def test_outputs_and_statuses(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    runner = Runner({"PATH": "/usr/bin:/bin", "FOO": "from-env"})
    assert runner.run("sh", "-c", BOTH, merge=True).stdout == "out\nerr\n"
    assert runner.run("sh", "-c", BOTH, quiet=True).stdout == "out\n"
    assert capfd.readouterr().err == ""
    assert runner.run("sh", "-c", BOTH).stdout == "out\n"
    assert capfd.readouterr().err == "err\n"
    shown = runner.run("sh", "-c", "echo shown; exit 3", check=False, capture=False)
    assert (shown.returncode, shown.stdout, capfd.readouterr().out) == (3, "", "shown\n")
    with pytest.raises(CommandFailed) as failed:
        runner.run("sh", "-c", "exit 5")
    assert failed.value.returncode == 5
    assert runner.run("sh", "-c", "echo $FOO $BAR", env={"BAR": "given"}).stdout == (
        "from-env given\n"
    )
    assert runner.run("cat", stdin="typed").stdout == "typed"
    source, target = tmp_path / "in", tmp_path / "out"
    source.write_text("from a file")
    assert runner.run("cat", stdin=source, stdout_path=target).stdout == ""
    assert target.read_text() == "from a file"


def test_a_missing_command_is_status_127(capfd: pytest.CaptureFixture[str]) -> None:
    runner = Runner({"PATH": "/nonexistent"})
    assert runner.run("no-such-tool", check=False).returncode == NOT_FOUND
    assert capfd.readouterr().err == "no-such-tool: command not found\n"
    assert runner.filtered("no-such-tool", drop_prefix="x") == NOT_FOUND
    assert runner.which("sh") is None


def test_filtered_drops_the_lines_asked(capfd: pytest.CaptureFixture[str]) -> None:
    runner = Runner({"PATH": "/usr/bin:/bin"})
    script = "echo 'verify: Waiting 1'; echo kept; echo 'also kept' >&2; exit 4"
    assert runner.filtered("sh", "-c", script, drop_prefix="verify: Waiting") == 4
    assert capfd.readouterr().out == "kept\nalso kept\n"
