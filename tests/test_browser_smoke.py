"""The browser the page tests use starts and renders (a broken install fails here first)."""

from __future__ import annotations

from typing import Any

from tests.browser import console_errors


def test_headless_chromium_renders_a_page(browser: Any) -> None:
    browser.get("data:text/html,<title>ok</title><p id=x>rendered</p>")
    assert browser.title == "ok"
    assert browser.find_element("id", "x").text == "rendered"
    assert console_errors(browser) == []
