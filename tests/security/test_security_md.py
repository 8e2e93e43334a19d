"""SECURITY.md's table of checks stays true: every test it names exists, and every
test of the class-wide attack suites is named."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
# The suites whose every test must appear in the table.
FULLY_CITED = [
    "tests/security/test_idor.py",
    "tests/security/test_mass_assignment.py",
    "tests/security/test_injection.py",
    "tests/security/test_token_forgery.py",
    "tests/security/test_enumeration.py",
    "tests/security/test_signing_key_attacks.py",
    "tests/security/test_mail_attacks.py",
    "tests/security/test_account_takeover.py",
]


def defined_tests(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def citations() -> set[tuple[str, str]]:
    return set(CITATION.findall((ROOT / "SECURITY.md").read_text()))


def test_every_test_security_md_names_exists() -> None:
    cited = citations()
    assert len(cited) > 50  # guards the pattern itself
    missing = {(path, name) for path, name in cited if name not in defined_tests(path)}
    assert missing == set()


def test_every_test_of_the_attack_suites_is_in_security_md() -> None:
    cited = citations()
    uncited = {(path, name) for path in FULLY_CITED for name in defined_tests(path)} - cited
    assert uncited == set()
