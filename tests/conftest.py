"""Shared pytest fixtures. Add yours below; keep each one small and documented."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Every test gets its own results store and export cache (EDGEKIT_DB, EDGEKIT_CACHE under tmp_path), so no
    test reads or writes the user's ~/.local/share/edgekit or ~/.cache/edgekit. Subprocesses inherit them."""
    monkeypatch.setenv("EDGEKIT_DB", str(tmp_path / "edgekit-test.db"))
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "edgekit-cache"))
