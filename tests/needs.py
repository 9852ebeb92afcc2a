"""What some tests need beyond Python, and what happens when it is missing.

Page tests need Chromium and its driver, cluster tests ``redis-server`` and ``redis-cli``, sink
tests a PostgreSQL server. Under CI (``CI`` set) a missing part fails the test, so CI can never
pass without it (``.ci/run`` installs what it can). Elsewhere the test is skipped with the
reason, so the README's test command passes on a machine with only Python.
"""

from __future__ import annotations

import os

import pytest


def need(available: bool, what: str) -> None:
    """Go on when ``available``; otherwise fail under CI and skip elsewhere, naming ``what``."""
    if available:
        return
    reason = f"needs {what}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: see .ci/run)", pytrace=False)
    pytest.skip(f"{reason} (skipped outside CI; under CI this fails)")
