"""Every dashboard page that answers GET (the role matrix's, which name every URL the
resolver has), asked with a token in its address, sends the browser on without it:
in a parameter the page reads or one it does not, as a parameter's name, in `next`, or
in a segment of its path. Not shown back is not enough: the address is the browser's
history, its address bar, the Referer sent onward and the access log. The filter pages
and the key dialogs did this already (tests/core/test_tokens_pasted_into_filters.py,
tests/apikeys/test_dialog_addresses_without_tokens.py); the account's email page, its
security and sessions pages, a call's page, the webhooks, the overview… answered 200
with the token left in the address bar. Each kind of secret the contract names, and a
webhook's signing secret, as pasted (with a copy's spaces) and percent-escaped."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from tests.accounts.test_role_matrix import (  # noqa: F401  # fixtures
    World,
    as_,
)
from tests.accounts.world import world  # noqa: F401  # fixture
from tests.apikeys.test_secrets_never_leak import every_log_line  # noqa: F401
from tests.conftest import HTMX
from tests.core.test_get_pages_take_odd_queries import pages, params_of  # noqa: F401
from tests.core.test_tokens_pasted_into_filters import PAGE_OF_EXPORT  # export -> its page

# One of each kind, as they are shaped; the key's is real (World.key_secret).
OTHERS = {
    "ct": "reminix_ct_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123",
    "pat": "reminix_pat_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123",
    "whsec": "whsec_Q2hhbmdlIG1lIHBsZWFzZSwgSSBhbSBhIHNlY3JldA",
}
# Whose path is its token by design: the invitation's link.
PATH_IS_ITS_TOKEN = {"accounts:invitation_accept"}


def secrets(world: World) -> dict[str, str]:  # noqa: F811
    return {"sk": world.key_secret, **OTHERS}


def spellings(secret: str) -> list[str]:
    """As pasted, with a copy's spaces, split by a space, and percent-escaped (once as a
    value is, and twice, which the query's one decoding leaves escaped once)."""
    return [
        quote(secret, safe=""),
        quote(f" {secret} ", safe=""),
        quote(secret[:14] + " " + secret[14:], safe=""),
        quote(secret.replace("_", "%5F"), safe=""),
    ]


def tail(secret: str) -> str:
    """What may never be seen: a secret without its prefix and the hint's 4 characters."""
    return secret.split("_")[-1][4:]


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def leaks(response, secret: str) -> bool:
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    return tail(secret).encode() in body_of(response) or tail(secret) in headers


def opened_instead(world: World, pages: dict[str, str], name: str) -> str:  # noqa: F811
    return pages[PAGE_OF_EXPORT.get(name, name)]


def test_a_token_in_any_parameter_of_any_page_is_taken_out_of_the_address(
    world: World,  # noqa: F811
    pages: dict[str, str],  # noqa: F811
    every_log_line: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """In each parameter the page reads, in one it does not (`zz`), and as a name; a
    parameter without one is kept."""
    owner = as_(world.ada)
    failures: list[str] = []
    for kind, secret in secrets(world).items():
        for name, url in pages.items():
            params = (*params_of(name), "zz")
            query = "&".join(
                f"{param}={spellings(secret)[i % 4]}" for i, param in enumerate(params)
            )
            response = owner.get(f"{url}?{query}&{quote(secret)}=1&keep=1")
            went = response.get("Location", "")
            expected = f"{opened_instead(world, pages, name)}?keep=1"
            if response.status_code not in (302, 303) or went != expected:
                failures.append(f"{kind} {name}: {response.status_code} to {went[:80]!r}")
            if leaks(response, secret):
                failures.append(f"{kind} {name}: the token is in the answer")
    for secret in secrets(world).values():
        assert tail(secret) not in every_log_line.text
    assert failures == [], "\n".join(failures)


def test_to_htmx_a_page_asked_with_a_token_is_opened_without_it(
    world: World,  # noqa: F811
    pages: dict[str, str],  # noqa: F811
) -> None:
    owner = as_(world.ada)
    secret = OTHERS["pat"]
    failures = []
    for name, url in pages.items():
        response = owner.get(f"{url}?zz={secret}", headers=HTMX)
        went = response.get("HX-Redirect", "")
        if went != opened_instead(world, pages, name) or leaks(response, secret):
            failures.append(f"{name}: {response.status_code} HX-Redirect {went[:80]!r}")
    assert failures == [], "\n".join(failures)


def test_signed_out_a_page_asked_with_a_token_is_opened_without_it_first(
    world: World,  # noqa: F811
    pages: dict[str, str],  # noqa: F811
) -> None:
    """Before sign-in's `next` can hold it, and without a session written."""
    visitor = Client()
    secret = OTHERS["ct"]
    failures = []
    for name, url in pages.items():
        response = visitor.get(f"{url}?zz={secret}&keep=1")
        went = response.get("Location", "")
        expected = f"{opened_instead(world, pages, name)}?keep=1"
        if response.status_code not in (302, 303) or went != expected or leaks(response, secret):
            failures.append(f"{name}: {response.status_code} to {went[:80]!r}")
    assert failures == [], "\n".join(failures)
    assert not visitor.cookies


def test_a_next_holding_a_token_is_kept_without_it() -> None:
    client = Client()
    login = reverse("accounts:login")
    calls = "/projects/some-project/calls/"
    asked = f"{calls}?client_token={OTHERS['ct']}&status=401"
    response = client.get(login, {"next": asked, "keep": "1"})
    assert response.status_code == 303
    went = urlsplit(response["Location"])
    assert went.path == login
    assert parse_qs(went.query) == {"next": [f"{calls}?status=401"], "keep": ["1"]}
    # A path that is a token: nothing of it is kept.
    response = client.get(login, {"next": f"/projects/{OTHERS['ct']}/"})
    assert (response.status_code, response["Location"]) == (303, login)


def test_a_token_in_a_segment_of_any_pages_path_goes_home_without_it(
    world: World,  # noqa: F811
    pages: dict[str, str],  # noqa: F811
    every_log_line: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """A token where a project's slug or a key's id goes, or after the page's path: no
    page can be kept (the 404 that answered left it in the address bar), home can."""
    owner = as_(world.ada)
    home = reverse("home")
    failures = []
    for kind, secret in secrets(world).items():
        for name, url in pages.items():
            addresses = [f"{url}{secret}/", f"{url}{quote(secret.replace('_', '%5F'))}/"]
            if world.project.slug in url:
                addresses.append(url.replace(world.project.slug, secret))
            for address in addresses:
                for client, htmx in ((owner, False), (owner, True), (Client(), False)):
                    response = client.get(address, headers=HTMX if htmx else {})
                    went = response.get("HX-Redirect" if htmx else "Location", "")
                    if went != home or leaks(response, secret):
                        failures.append(
                            f"{kind} {name} {address[:60]}{' (htmx)' if htmx else ''}: "
                            f"{response.status_code} to {went[:60]!r}"
                        )
    for secret in secrets(world).values():
        assert tail(secret) not in every_log_line.text
    assert failures == [], "\n".join(failures)


def test_an_invitations_link_keeps_its_own_token(world: World) -> None:  # noqa: F811
    """The one path that is its token (reminix_inv_): not sent home."""
    url = reverse("accounts:invitation_accept", args=["reminix_inv_" + "A" * 40])
    response = Client().get(url)
    assert response.get("Location", "") != reverse("home")
    assert response.status_code in (200, 302, 404)


def test_sent_home_for_a_token_in_the_path_a_person_signed_in_is_told_why(
    world: World,  # noqa: F811
) -> None:
    owner = as_(world.ada)
    response = owner.get(f"/projects/{world.key_secret}/settings/", follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "A secret token was in the address you opened: it was removed." in html
    assert tail(world.key_secret) not in html
    # Said once.
    assert "it was removed" not in owner.get(response.redirect_chain[-1][0]).content.decode()


def test_the_api_answers_a_token_in_its_address_itself(world: World) -> None:  # noqa: F811
    """/v1 and /client refuse a token in a query string in the contract's own words: they
    are answered before the dashboard's middleware, and sent nowhere."""
    response = Client().get(f"/v1/agents?key={world.key_secret}")
    assert response.status_code == 401 and response["Content-Type"].startswith("application/json")
    assert "Location" not in response


@pytest.mark.parametrize("htmx", [False, True])
def test_a_path_that_starts_with_two_slashes_is_sent_to_this_site_not_another(
    world: World,  # noqa: F811
    htmx: bool,
) -> None:
    """`GET //evil.example/?q=<token>` (gunicorn hands the path on as sent, both slashes)
    was answered 303 to //evil.example/, which a browser reads as another site: anyone's
    link to this dashboard sent its visitors wherever the link said. The path is kept as
    a path of this site, signed in or out."""
    for client in (as_(world.ada), Client()):
        response = client.get(
            "/",
            {"q": OTHERS["ct"], "keep": "1"},
            PATH_INFO="//evil.example/",
            headers=HTMX if htmx else {},
        )
        went = response.get("HX-Redirect" if htmx else "Location", "")
        assert went == "/%2Fevil.example/?keep=1"


def test_the_path_is_sent_on_as_it_was_asked_with_its_escapes(
    world: World,  # noqa: F811
) -> None:
    """A path holding an escaped "?", "#" or "%" (a project slug or a search's text) came
    back decoded: "/a%3Fb/" went to "/a?b/", another page with the rest as its query, and
    "/a%23b/" to "/a", the rest a fragment the server never sees."""
    as_sent = "/a?b#c%41 é/".encode().decode("iso-8859-1")  # WSGI's PATH_INFO
    response = as_(world.ada).get("/", {"q": OTHERS["ct"], "keep": "1"}, PATH_INFO=as_sent)
    assert response["Location"] == "/a%3Fb%23c%2541%20%C3%A9/?keep=1"


def test_a_next_holding_a_token_after_a_hash_is_kept_without_it() -> None:
    """`?next=/calls/#reminix_ct_…` (a fragment, which without_tokens did not read: it
    splits at "?" only) was left in the address, and sign-in wrote it into its form and
    links. The fragment goes; the rest of `next` stays."""
    client = Client()
    login = reverse("accounts:login")
    calls = "/projects/some-project/calls/"
    for asked in (f"{calls}#{OTHERS['ct']}", f"{calls}?status=401#{OTHERS['ct']}"):
        response = client.get(login, {"next": asked, "keep": "1"})
        assert response.status_code == 303, asked
        went = parse_qs(urlsplit(response["Location"]).query)
        assert went == {"next": [asked.partition("#")[0]], "keep": ["1"]}
    # A fragment without a token is the page's own.
    response = client.get(login, {"next": f"{calls}#filters"})
    assert response.status_code == 200


def test_a_token_pasted_onto_an_invitations_link_goes_home_without_it(
    world: World,  # noqa: F811
) -> None:
    """An invitation's link is answered with its own token in the path, but an API key
    pasted onto its end ("…/invitations/reminix_inv_reminix_sk_…/") was read as part of
    the invitation's token: a 404 with the key left in the address bar."""
    for secret in secrets(world).values():
        url = reverse("accounts:invitation_accept", args=["reminix_inv_" + secret])
        response = Client().get(url)
        assert (response.status_code, response.get("Location")) == (303, reverse("home"))
