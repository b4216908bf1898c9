"""Migrate the peer's (freshly created) database and print one API key.

    cd benchmarks
    BENCH_PEER_DATABASE_URL=… SECRET_KEY=… ../.venv-bench/bin/python -m peer.prepare

The key is made with the package's own manager method, APIKey.objects.create_key, as an
application using djangorestframework-api-key makes its keys; it goes to stdout alone.
"""

from __future__ import annotations

import io
import os


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "peer.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_api_key.models import APIKey

    call_command("migrate", verbosity=0, interactive=False, stdout=io.StringIO())
    _, key = APIKey.objects.create_key(name="bench")
    print(key, flush=True)


if __name__ == "__main__":
    main()
