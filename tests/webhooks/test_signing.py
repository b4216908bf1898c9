"""The signature (a known vector, and the README's verification snippet), the generic
event's shape, and Slack's escaping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from webhooks.payloads import mrkdwn_escape, slack_message
from webhooks.signing import secret_decrypt, secret_encrypt, secret_generate, signature_header

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Callable[..., bool]:
    """The README's verification snippet, run as printed there: customers copy it."""
    text = README.read_text()
    start = text.index("```python\nimport hashlib, hmac, time")
    code = text[start + len("```python\n") : text.index("```", start + 3)]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return cast(Callable[..., bool], namespace["verify"])


verify = readme_verify()


def test_the_signature_matches_a_known_vector():
    header = signature_header("whsec_test", timestamp=1700000000, body=b'{"a":1}')
    assert header == (
        "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
    )


def test_the_readme_snippet_accepts_a_fresh_signature_and_refuses_an_old_or_altered_one():
    secret = secret_generate()
    now = int(time.time())
    body = b'{"id":"evt_1"}'
    assert verify(secret, signature_header(secret, timestamp=now, body=body), body)
    assert not verify(secret, signature_header(secret, timestamp=now - 301, body=body), body)
    assert not verify(secret, signature_header(secret, timestamp=now, body=body), body + b" ")
    assert not verify("whsec_other", signature_header(secret, timestamp=now, body=body), body)


def test_the_readme_snippet_answers_any_malformed_header_false_without_raising():
    secret = secret_generate()
    now = int(time.time())
    body = b'{"id":"evt_1"}'
    good = signature_header(secret, timestamp=now, body=body)
    signature = good.split("v1=")[1]
    for header in (
        "",
        "garbage",
        ",,,",
        f"v1={signature}",  # no time
        f"t={now}",  # no signature
        f"t=abc,v1={signature}",
        f"t=\u00b2,v1={signature}",  # a digit to isdigit(), not to int()
        f"t={'9' * 5000},v1={signature}",  # past int()'s digit limit
        f"t={now},v1=\u00e9{signature[1:]}",  # compare_digest refuses non-ASCII text
        f"t={now},v1={signature[:-1]}",
    ):
        assert verify(secret, header, body) is False, header
    # Spaces after the commas, and a second signature beside the right one, still verify.
    assert verify(secret, f"t={now}, v1={'0' * 64}, v1={signature}", body)


def test_a_secret_is_stored_encrypted_and_reads_back(settings):
    secret = secret_generate()
    assert secret.startswith("whsec_") and len(secret) > 40
    stored = secret_encrypt(secret)
    assert secret not in stored
    assert secret_decrypt(stored) == secret


def test_a_secret_still_reads_after_secret_key_is_rotated_into_the_fallbacks(settings):
    secret = secret_generate()
    stored = secret_encrypt(secret)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-0123456789abcdef0123456789abcdef"
    assert secret_decrypt(stored) == secret


def test_slack_text_escapes_what_a_customer_named():
    assert mrkdwn_escape("<!channel> & <https://evil|here>") == (
        "&lt;!channel&gt; &amp; &lt;https://evil|here&gt;"
    )
    event = {
        "project": {"slug": "p", "name": "A&B <!here>"},
        "alert": {
            "title": "Revoked or expired token still in use",
            "severity": "high",
            "summary": "Key <!channel> tried",
            "key": {"name": "<https://evil.example|click>", "hint": "reminix_sk_ab…"},
            "occurrences": 2,
            "lastSeen": "2026-01-01T00:00:00Z",
            "url": "https://dash.example/projects/p/alerts/#flag-1",
        },
    }
    message = slack_message(event)
    text = json.dumps(message)
    assert "<!channel>" not in text and "<!here>" not in text
    assert "<https://evil" not in text
    assert "A&amp;B &lt;!here&gt;" in message["text"]
    assert "<https://dash.example/projects/p/alerts/#flag-1|Review it in Reminix>" in text


def test_a_name_saved_with_line_breaks_or_direction_controls_stays_on_its_line_in_slack():
    """Names saved before names were one line (or put there by hand) reached the Slack
    message as they stood: a key or project name with a line break wrote lines of its own
    into the channel (and ended the message's bold title early), and a right-to-left
    override reordered the text around it, as the alert mail never lets them."""
    odd = "Billing\r\nAll clear, ignore this alert\u2028\u202eesrever\u2066\x85"
    event = {
        "project": {"slug": "p", "name": odd},
        "alert": {
            "title": "Revoked or expired token still in use",
            "severity": "high",
            "summary": f"Key “{odd}” (reminix_sk_ab…cd) no longer works",
            "key": {"name": odd, "hint": "reminix_sk_ab…cd"},
            "occurrences": 2,
            "lastSeen": "2026-01-01T00:00:00Z",
            "url": "https://dash.example/projects/p/alerts/#flag-1",
        },
    }

    message = slack_message(event)

    title = message["blocks"][0]["text"]["text"]
    details = message["blocks"][1]["text"]["text"].split("\n")
    assert title == (
        "*[High] Revoked or expired token still in use in "
        "Billing All clear, ignore this alert esrever*"
    )
    assert message["text"] == title.strip("*")
    assert details[:2] == [
        "Key “Billing All clear, ignore this alert esrever ” (reminix_sk_ab…cd) no longer works",
        "Key: Billing All clear, ignore this alert esrever (`reminix_sk_ab…cd`)",
    ]
    assert len(details) == 4
    for control in ("\r", "\u2028", "\u202e", "\u2066", "\x85"):
        assert control not in json.dumps(message, ensure_ascii=False)
