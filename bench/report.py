"""The printed table: one row per figure, with its target and whether it was met."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PASS, MISS, FAIL, INFO = "pass", "MISS", "FAIL", ""


@dataclass
class Row:
    section: str
    measure: str
    value: str
    target: str = ""
    result: str = INFO
    figure: float | None = None  # the number behind ``value``, for --json


def at_least(value: float, target: float) -> str:
    return PASS if value >= target else MISS


def at_most(value: float, target: float) -> str:
    return PASS if value <= target else MISS


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def table(rows: list[Row]) -> str:
    heads = ("section", "measure", "value", "target", "result")
    cells = [heads] + [(r.section, r.measure, r.value, r.target, r.result) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(heads))]
    rule = "  ".join("-" * w for w in widths)
    lines = []
    for i, cell in enumerate(cells):
        lines.append("  ".join(text.ljust(w) for text, w in zip(cell, widths, strict=True)))
        if i == 0:
            lines.append(rule)
    return "\n".join(line.rstrip() for line in lines)


def machine_lines(machine: dict[str, Any]) -> list[str]:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    return [
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}",
        f"python {machine['python']}; Redis {machine['redis']} (appendonly "
        f"{machine['redis_aof']}, maxmemory-policy {machine['redis_maxmemory_policy']}); "
        f"{packages}",
        f"processor code digest (processor/, workers/, config/): {machine['code']}",
        "load average at start: " + " ".join(f"{x:.2f}" for x in machine["load_start"]),
    ]


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
