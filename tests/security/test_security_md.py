"""SECURITY.md's table of checks cannot drift, checked both ways: every module and
test it names exists, and every test of the attack suites is named in it."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `tests/…/test_x.py::test_name`, or a whole module: `tests/…/test_x.py`.
CITATION = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
# The attack suites: every module these patterns match, and every test in it,
# must be in the table. The stack's guarantees (docs/operations.md, "What the
# stack guarantees") are tests/stack/test_10 to test_14.
ATTACK_SUITES = ["tests/security/test_*.py", "tests/stack/test_1[0-4]_*.py"]


def defined_tests(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def citations() -> set[tuple[str, str]]:
    """(module, test) pairs, test '' where the table names the module alone."""
    return set(CITATION.findall((ROOT / "SECURITY.md").read_text()))


def attack_suite_modules() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for pattern in ATTACK_SUITES
        for path in ROOT.glob(pattern)
    }


def test_every_test_security_md_names_exists() -> None:
    cited = citations()
    assert len(cited) > 50  # guards the pattern itself
    missing_modules = {path for path, _ in cited if not (ROOT / path).is_file()}
    assert missing_modules == set()
    missing_tests = {
        (path, name) for path, name in cited if name and name not in defined_tests(path)
    }
    assert missing_tests == set()


def test_every_test_of_the_attack_suites_is_in_security_md() -> None:
    modules = attack_suite_modules()
    assert len(modules) > 15  # guards the patterns themselves
    cited = citations()
    uncited_modules = modules - {path for path, _ in cited}
    assert sorted(uncited_modules) == []
    uncited_tests = {(path, name) for path in modules for name in defined_tests(path)} - cited
    assert sorted(uncited_tests) == []
