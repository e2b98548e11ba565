"""The generated admin token: kept beside a SQLite database, readable by its owner only, the
same at every start until ADMIN_TOKEN is set."""

from __future__ import annotations

import stat
from pathlib import Path

from web.admin_token import token_file, with_stable_admin_token
from web.settings import Settings


def _settings(database: Path, **env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": f"sqlite:///{database}", **env})


def test_a_generated_token_is_kept_beside_the_database_and_used_again(tmp_path: Path) -> None:
    database = tmp_path / "concert-queue.db"
    first = with_stable_admin_token(_settings(database))
    again = with_stable_admin_token(_settings(database))
    assert first.admin_token == again.admin_token
    kept = tmp_path / "concert-queue.db.admin-token"
    assert kept.read_text().strip() == first.admin_token
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_another_database_gets_another_token(tmp_path: Path) -> None:
    one = with_stable_admin_token(_settings(tmp_path / "one.db"))
    other = with_stable_admin_token(_settings(tmp_path / "other.db"))
    assert one.admin_token != other.admin_token


def test_admin_token_set_in_the_environment_wins_and_nothing_is_written(tmp_path: Path) -> None:
    database = tmp_path / "concert-queue.db"
    settings = with_stable_admin_token(_settings(database, ADMIN_TOKEN="chosen"))
    assert settings.admin_token == "chosen"
    assert not (tmp_path / "concert-queue.db.admin-token").exists()


def test_postgresql_and_in_memory_databases_keep_no_token_file() -> None:
    assert token_file("postgresql://postgres@127.0.0.1:5432/x") is None
    assert token_file("sqlite:///:memory:") is None
