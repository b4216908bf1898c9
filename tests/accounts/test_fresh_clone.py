"""The path a new user takes: `make run` migrates a new SQLite file and serves sign-in."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A SQLite file of its own, whatever the suite's database.
pytestmark = pytest.mark.same_on_every_database

ROOT = Path(__file__).resolve().parents[2]

RENDER_SIGN_IN = """
import django
django.setup()
from django.test import Client
response = Client().get("/account/login/")
print(response.status_code)
print("Sign in" in response.content.decode())
"""


def test_a_new_sqlite_file_migrates_and_renders_the_sign_in_page(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env.update(
        DEBUG="true",
        DJANGO_SETTINGS_MODULE="reminix_dashboard.settings.base",
        DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        ALLOWED_HOSTS="testserver",
    )
    env.pop("SECRET_KEY", None)
    env.pop("TOKEN_HASH_KEY", None)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "fresh.sqlite3").exists()
    render = subprocess.run(
        [sys.executable, "-c", RENDER_SIGN_IN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stderr
    assert render.stdout.split() == ["200", "True"]
