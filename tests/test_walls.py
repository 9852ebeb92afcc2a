"""The three walls: the core does no I/O, the store knows no HTTP, the web knows no rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "processor"
FORBIDDEN = {
    "core": {"flask", "rq", "redis", "requests", "os", "socket", "time", "processor.store",
             "processor.web", "processor.context", "processor.settings"},
    "store": {"flask", "werkzeug", "processor.web"},
    "web": {"processor.core.model", "processor.core.policies", "processor.core.history"},
}  # fmt: skip


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_beyond_its_wall(package: str) -> None:
    for path in sorted((ROOT / package).glob("*.py")):
        for name in imported(path):
            for banned in FORBIDDEN[package]:
                assert name != banned and not name.startswith(banned + "."), (
                    f"{path.name} imports {name}"
                )


def test_the_core_reads_no_clock_and_no_environment() -> None:
    for path in sorted((ROOT / "core").glob("*.py")):
        text = path.read_text()
        for call in ("time.time(", "datetime.now(", "date.today(", "os.environ", "getenv("):
            assert call not in text, f"{path.name} calls {call}"
