"""The browser tests' fixtures, defined in tests/browser.py: a live console, a Chromium and its windows."""

from tests.browser import browser, live, page, windows  # noqa: F401 (pytest's fixtures, by name)
