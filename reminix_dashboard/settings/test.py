"""Settings for the test suite: the real settings, with a fast password hasher.

One test (tests/accounts/test_passwords.py) checks that the real settings store Argon2id.
"""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("TOKEN_HASH_KEY", "test-token-hash-key-not-for-production-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# The suite is the same whatever the shell exports: a REDIS_URL there would send every test
# through a shared store whose change markers go out on commit, which a test's transaction
# never makes. Tests of the shared store ask for their own (the redis_store fixture, and
# the servers of tests/servers.py).
os.environ.pop("REDIS_URL", None)

from reminix_dashboard.settings.base import *  # noqa: E402,F403
from reminix_dashboard.settings.base import PASSWORD_HASHERS as REAL_PASSWORD_HASHERS  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *REAL_PASSWORD_HASHERS]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Secure cookies would not travel over the plain http of the test server and browser tests.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# A browser keeps a __Host- cookie only when it is Secure: the plain names, as in development.
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the app folders, as in development: no collectstatic before tests.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Write each API call's usage before the response, so a test reads what it just did.
USAGE_FLUSH_SECONDS = 0
# Mail and sign-ups are done on the request, so a test reads them right after the response
# (tests/core/test_after_answer.py checks the thread that does them otherwise).
WORK_AFTER_ANSWER = False
# A test database need not outlive a crash of its server: on PostgreSQL a commit returns
# without waiting for its WAL to reach the disk (0.5-0.9 ms a commit here, and the live
# server's requests, schemathesis's thousands among them, commit each). What another
# connection sees is unchanged: a commit is visible the moment it returns either way.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["OPTIONS"]["options"] += " -c synchronous_commit=off"  # noqa: F405
