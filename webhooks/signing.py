"""Signing secrets (made here, shown once, stored encrypted), endpoint URLs (stored
encrypted), and the signature header.

A webhook's secret must be recoverable (we sign each delivery with it), so unlike an API
key it cannot be kept as a hash. It is encrypted with Fernet (`cryptography`, already a
dependency) under keys derived from SECRET_KEY and SECRET_KEY_FALLBACKS: rotating
SECRET_KEY the Django way (old key moved to the fallbacks) keeps every secret readable.
An endpoint's URL is a credential too (a Slack incoming webhook's path is; so may a
generic endpoint's query be), and is encrypted the same way under keys of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

PREFIX = "whsec_"
_PURPOSE = b"reminix.webhooks.signing-secret"
_URL_PURPOSE = b"reminix.webhooks.endpoint-url"


def secret_generate() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def secret_hint(secret: str) -> str:
    """What the list shows of a secret: enough to tell two apart, too little to use."""
    return f"{secret[: len(PREFIX) + 4]}…"


def _fernet(purpose: bytes = _PURPOSE) -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(hmac.new(key.encode(), purpose, hashlib.sha256).digest())
            )
            for key in keys
        ]
    )


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def url_encrypt(url: str) -> str:
    return _fernet(_URL_PURPOSE).encrypt(url.encode()).decode()


def url_decrypt(token: str) -> str:
    return _fernet(_URL_PURPOSE).decrypt(token.encode()).decode()


def signature_header(secret: str, *, timestamp: int, body: bytes) -> str:
    """`Reminix-Signature`: Stripe's scheme. `v1` is the hex HMAC-SHA256, keyed with the
    whole secret (`whsec_…`), of `"<timestamp>.<body>"`; the receiver recomputes it and
    refuses a timestamp more than 5 minutes off, so a captured delivery cannot be replayed."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
