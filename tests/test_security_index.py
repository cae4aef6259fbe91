"""SECURITY.md's index names tests that exist: a test renamed, moved or deleted fails here, not silently."""

import importlib
import re
from pathlib import Path

SECURITY = Path(__file__).resolve().parents[1] / "SECURITY.md"
# `tests/auth/test_tokens.py::test_name` (or `...::Class::test_name`), in a row of the table.
NODE_ID = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)+)`")


def indexed_tests() -> list[tuple[str, list[str]]]:
    rows = [line for line in SECURITY.read_text().splitlines() if line.startswith("| API")]
    return [(path, names.split("::")[1:]) for row in rows for path, names in NODE_ID.findall(row)]


def test_the_index_covers_the_owasp_api_top_10():
    text = SECURITY.read_text()
    for number in range(1, 11):
        assert f"API{number}:2023" in text
    assert len(indexed_tests()) >= 50


def test_every_test_the_index_names_exists():
    missing = []
    for path, names in indexed_tests():
        found = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        for name in names:
            found = getattr(found, name, None)
        if not (callable(found) and names[-1].startswith("test_")):
            missing.append(f"{path}::{'::'.join(names)}")
    assert not missing, "SECURITY.md names tests that do not exist"
