"""Settings for every deployment; each per-deployment value comes from the environment.

A fresh clone runs with nothing set: `manage.py` defaults to DEBUG on, with SQLite in the
project folder, console email and development secrets. The server entry points (wsgi.py,
asgi.py, so gunicorn and `make serve`) and these settings themselves default to DEBUG off.
With DEBUG off the secrets are required and the security headers and cookie flags are on,
so a forgotten variable stops the process instead of running a weak production.
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from reminix_dashboard.settings import environment as checked

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Off unless asked for, except that manage.py (the developer's tool) asks for it by default.
DEBUG: bool = checked.boolean("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
_DEV_TOKEN_HASH_KEY = "dev-only-insecure-token-hash-key"


def _secret(name: str, dev_default: str) -> str:
    value = checked.secret(name)
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")


SECRET_KEY = _secret("SECRET_KEY", _DEV_SECRET_KEY)
# The keys SECRET_KEY replaced, newest first: what they signed (sessions, reset links) still
# reads, and so do the webhook secrets and URLs encrypted under them (webhooks/signing.py).
SECRET_KEY_FALLBACKS: list[str] = checked.secrets_listed("SECRET_KEY_FALLBACKS")
# The server secret behind the HMAC-SHA256 of every stored token (see apikeys/tokens.py).
# Rotating it invalidates every API key, client token and personal access token at once.
TOKEN_HASH_KEY = _secret("TOKEN_HASH_KEY", _DEV_TOKEN_HASH_KEY)
if not DEBUG and (len(TOKEN_HASH_KEY) < 32 or TOKEN_HASH_KEY == SECRET_KEY):
    raise ImproperlyConfigured(
        "TOKEN_HASH_KEY must be at least 32 characters and differ from SECRET_KEY "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')."
    )

ALLOWED_HOSTS: list[str] = checked.host_names(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = checked.origins("CSRF_TRUSTED_ORIGINS", wildcard=True)

# The API's usage log and executions are written in batches (core/write_behind.py): by
# each worker's background thread every this many seconds, or with Redis by ingest_usage,
# which lets a batch gather this long once it has caught up. 0 writes each call before
# its response.
USAGE_FLUSH_SECONDS: float = checked.seconds("USAGE_FLUSH_SECONDS", default=0.5, least=0, most=60)

# The scheduler (manage.py run_scheduler): how often detection runs, how often webhook
# deliveries that are due go out (alerts, and a test or a retry an owner queued), and how
# long the usage log is kept (prune_usage --older-than).
DETECTION_EVERY_SECONDS: int = checked.whole_number(
    "DETECTION_EVERY_SECONDS", default=60, least=1, most=86400
)
WEBHOOK_DELIVERY_EVERY_SECONDS: int = checked.whole_number(
    "WEBHOOK_DELIVERY_EVERY_SECONDS", default=10, least=1, most=86400
)
USAGE_RETENTION: str = checked.text("USAGE_RETENTION", default="90d")
# How often a webhook's delivery log reloads itself while a delivery waits (whole seconds).
# Not a deployment's choice, so not read from the environment: the browser tests shorten it.
WEBHOOK_LOG_REFRESH_SECONDS = 3
# Calls per token per clock minute before 429 rate_limit_exceeded (api/rate_limits.py).
# Shared across workers only with REDIS_URL. 0 turns limits off.
API_RATE_LIMIT_PER_MINUTE: int = checked.whole_number(
    "API_RATE_LIMIT_PER_MINUTE", default=1200, least=0, most=10**9
)
# Agents one project may have (PUT /v1/agents/{name} refuses a new one past it): every
# agents list, scope check and the API's agent cache is per project and reads them.
MAX_AGENTS_PER_PROJECT: int = checked.whole_number(
    "MAX_AGENTS_PER_PROJECT", default=100, least=1, most=100_000
)

# Where people reach the dashboard, for links in emails sent outside a request (alerts).
DASHBOARD_URL: str = checked.public_url("DASHBOARD_URL", default="http://127.0.0.1:8000")

# Whom a researcher tells of a vulnerability: /.well-known/security.txt's Contact lines
# (core/well_known.py). Without one that file is not served (check --deploy warns).
SECURITY_CONTACT: list[str] = checked.contacts("SECURITY_CONTACT")

# Reverse proxies whose X-Forwarded-For we believe (exact addresses or CIDR networks).
# Without them the client address is REMOTE_ADDR and the header is ignored.
TRUSTED_PROXIES: list[str] = checked.networks("TRUSTED_PROXIES")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "axes",
    "core",
    "audit",
    "accounts",
    "notifications",
    "apikeys",
    "usage",
    "api",
    "scheduler",
    "overview",
    "alerts",
    "agents",
    "webhooks",
]

MIDDLEWARE = [
    # /healthz and /readyz: a load balancer's probe, on any Host, over http, to anyone.
    "core.middleware.ProbeMiddleware",
    # Before anything reads the scheme, the API's path included: X-Forwarded-Proto from
    # a peer that is none of TRUSTED_PROXIES is dropped.
    "core.middleware.ForwardedProtoMiddleware",
    # The request's user agent, for the audit events it writes (/v1's included).
    "core.user_agent.UserAgentMiddleware",
    # Then: /v1 and /client are answered here, with none of the dashboard's middleware.
    "api.middleware.ApiMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Early, so that every dashboard answer passes it, a refused Host's 400 included.
    "core.middleware.NoStoreMiddleware",
    "core.middleware.BrowserFeaturesMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.SessionSeenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A token in a page's address (pasted into a filter, the address bar, `next`) is taken
    # out of it before any view runs: the browser is sent on without it.
    "core.middleware.PastedTokensMiddleware",
    "accounts.middleware.HtmxSignInMiddleware",
    # A form-only address opened as a page: the dashboard's 405 page, not an empty one.
    "core.middleware.MethodNotAllowedPageMiddleware",
    # A view's database error that a retry would get past: 503, not 500.
    "core.middleware.DatabaseBusyMiddleware",
    # Last, so that a lockout answers before any view runs.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "reminix_dashboard.urls"
# What api.middleware.ApiMiddleware resolves /v1 and /client against.
API_URLCONF = "reminix_dashboard.api_root_urls"
# Our templates/ override Django's form templates, so errors stand beside their field.
FORM_RENDERER = "core.forms.FormRenderer"  # no pasted token shown back in a form
WSGI_APPLICATION = "reminix_dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.projects",
                "apikeys.context_processors.token_reminders",
                "alerts.context_processors.open_alerts",
            ],
        },
    },
]

DATABASES = {
    "default": checked.database_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault(
    "CONN_MAX_AGE", checked.whole_number("CONN_MAX_AGE", default=60, least=0, most=10**6)
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Seconds; PostgreSQL takes milliseconds up to 2^31 - 1 and refuses the whole connection
# otherwise, so a value out of range would fail every request rather than the start.
DB_STATEMENT_TIMEOUT: int = checked.whole_number(
    "DB_STATEMENT_TIMEOUT", default=30, least=0, most=2_147_483
)
_DB_LOCK_TIMEOUT = checked.whole_number("DB_LOCK_TIMEOUT", default=10, least=0, most=2_147_483)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A stalled database fails a request fast (the API answers 503 service_unavailable with
    # Retry-After) instead of hanging it until gunicorn kills the worker. Seconds; 0 turns a
    # timeout off (a one-off migration of a very large table, say).
    # JIT compilation costs ~100 ms per heavy query here and never pays back on ours.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options",
        "-c jit=off"
        f" -c statement_timeout={DB_STATEMENT_TIMEOUT * 1000}"
        f" -c lock_timeout={_DB_LOCK_TIMEOUT * 1000}",
    )
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", checked.whole_number("DB_CONNECT_TIMEOUT", default=5, least=0, most=3600)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dev server read while a write is in flight; IMMEDIATE avoids
    # "database is locked" upgrades from read to write inside a transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL: str = checked.redis_url("REDIS_URL")
# Namespaces this deployment's keys in a Redis it may share (rate-limit counts, change
# markers, the usage stream).
REDIS_KEY_PREFIX: str = checked.key_prefix("REDIS_KEY_PREFIX", default="reminix:")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that stalls costs a sign-in at most this; the throttles then count
            # in each process (core/counters.py) rather than hang or fail the request.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            # Under this deployment's prefix too: the throttles' counts and the mail jobs'
            # notes are keyed by a person's, a project's or a job's id alone, which another
            # deployment on the same Redis has too.
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}cache",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses a locked-out email or address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Argon2id for new hashes; PBKDF2 stays so that older hashes still verify and are
# upgraded to Argon2id at the user's next sign-in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
# Sudo mode (accounts/sudo.py): how long a password or code check lets sensitive actions
# (minting credentials, members, origins, the second factor) go without asking again.
SUDO_MODE_SECONDS = checked.whole_number("SUDO_MODE_SECONDS", default=600, least=0, most=7 * 86400)
# Passkeys (accounts/passkeys.py): the WebAuthn relying party ID and the origins an
# assertion may come from. Empty: the request's host name (no port), and its scheme and
# host. Behind a proxy that changes either, set them (e.g. dashboard.example.com and
# https://dashboard.example.com): a passkey is bound to its RP ID for good.
WEBAUTHN_RP_ID: str = checked.host_name("WEBAUTHN_RP_ID")
WEBAUTHN_ORIGINS: list[str] = checked.origins("WEBAUTHN_ORIGINS")
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 2

# Sign-in lockout (django-axes): five failures for one email, or from one address (an
# IPv6 /64 as one: accounts.lockout.lockout_address), lock that email or address for
# fifteen minutes. The counters live in the database,
# so every worker process sees the same count.
AXES_FAILURE_LIMIT = checked.whole_number("AXES_FAILURE_LIMIT", default=5, least=1, most=1000)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Not reset on success: axes would clear the failures of every record matching the
# username OR the address, so signing in to one's own account from the attacking address
# would wipe the count against the victim's email. Counts expire after the cool-off anyway.
AXES_RESET_ON_SUCCESS = False
# While an address is locked out, its attempts are refused and not counted: otherwise a
# person behind the same NAT who types the right password would add failures to their own
# account, and lock it out everywhere.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_FORM_FIELD = "username"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.lockout_address"
AXES_HANDLER = "accounts.lockout.StoredTextAxesHandler"  # no NUL reaches its columns
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out"
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_VERBOSE = False
# Sign-ins and sign-outs are the person's audit events (address and user agent included),
# which the security page and the members' last sign-ins read: axes' AccessLog kept a second
# copy that nothing read and no job removed. Failures still count (AccessAttempt).
AXES_DISABLE_ACCESS_LOG = True
# Kept out of django-axes' stored request data: an invitation link's token rides in `next`.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "next"]

SESSION_COOKIE_AGE = 60 * 60 * 24 * 14
# Notes shown once ("Sign in again") ride in a signed cookie alone. Django's default keeps
# what that cookie cannot hold in the session, which for someone signed out is a new row:
# a script that never reads its pages fills the cookie once, then each request stored one.
# Past the cookie's 2 KB, the oldest unread notes give way.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# GitHub's secret-scanning public keys, {identifier: PEM} as JSON (from
# https://api.github.com/meta/public_keys/secret_scanning): without them
# /v1/credentials/github-secret-scanning is off (alerts/secret_scanning.py).
SECRET_SCANNING_PUBLIC_KEYS: dict[str, str] = checked.json_object_of_text(
    "SECRET_SCANNING_PUBLIC_KEYS"
)

EMAIL_CONFIG = checked.mail_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# A mail server that does not answer must not hold a request (or a job) for long.
# 0 would make the socket non-blocking: every send would fail at once.
EMAIL_TIMEOUT: int = checked.whole_number("EMAIL_TIMEOUT", default=10, least=1, most=3600)
# What the sends of one run of a mail job (the detector's alerts, the expiry reminders)
# may take in all: the rest stay owed for the next run (notifications/recipients.py
# MailRun), so a mail server that hangs does not hold the detector's next run.
MAIL_RUN_BUDGET_SECONDS: float = checked.seconds(
    "MAIL_RUN_BUDGET_SECONDS", default=30, least=1, most=86400
)
DEFAULT_FROM_EMAIL = checked.mail_sender(
    "DEFAULT_FROM_EMAIL", default="Reminix <no-reply@reminix.local>"
)
# The work behind the forms anyone can send about an address (reset, sign-up, address
# change: mail, a new account) is done after the answer, on a thread
# (core/after_answer.py): the answer's time tells nothing.
WORK_AFTER_ANSWER: bool = checked.boolean("WORK_AFTER_ANSWER", default=True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where collectstatic puts the files whitenoise serves with DEBUG off.
STATIC_ROOT = Path(checked.directory("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security headers. The browser loads nothing from outside our own origin.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Permissions-Policy (core.middleware.BrowserFeaturesMiddleware): each feature no page uses
# is off for every origin; passkeys (accounts/passkeys.py) are ours alone.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    **{
        feature: []
        for feature in (
            "accelerometer",
            "autoplay",
            "camera",
            "display-capture",
            "geolocation",
            "gyroscope",
            "magnetometer",
            "microphone",
            "midi",
            "payment",
            "usb",
        )
    },
    "publickey-credentials-create": ["self"],
    "publickey-credentials-get": ["self"],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # __Host-: a cookie only this very origin sets, over https, for the whole site. A
    # sibling subdomain (or whoever is in the middle of one of its http pages) cannot
    # plant a session of its own here and so sign a victim in as the attacker. Renaming
    # them signs everyone out once.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_SSL_REDIRECT = checked.boolean("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = checked.whole_number(
        "SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365, least=0, most=10 * 60 * 60 * 24 * 365
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = checked.boolean("SECURE_HSTS_PRELOAD", default=True)
    # The TLS terminator in front of us says which scheme the client used.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Any token in any log line (the dev server logs query strings) is cut to its prefix.
    "filters": {
        "redact_tokens": {"()": "core.redact.RedactTokens"},
        # And no line break a client sent (a decoded path) starts a log line of its own.
        "one_line": {"()": "core.redact.OneLine"},
        "warning_without_traceback": {"()": "core.redact.WarningWithoutTraceback"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens", "one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": checked.log_level("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Every refused API call would log a 4xx line; the usage log already holds them.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # The dev server's request lines, through the redacting handler (Django's own
        # handler for them would print a token in a query string as it came).
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "axes": {"level": "WARNING"},
        # Every scanner's made-up Host header: one line each, not an ERROR and a
        # traceback of Django's own code.
        "django.security.DisallowedHost": {
            "handlers": ["console"],
            "filters": ["warning_without_traceback"],
            "propagate": False,
        },
        # At DEBUG this logger prints the whole template context when a variable fails to
        # resolve, and the page that shows a new key has the key in its context.
        "django.template": {"level": "INFO"},
    },
}
