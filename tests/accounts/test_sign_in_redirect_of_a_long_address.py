"""An htmx request after the session ended is sent to sign in whatever page it names.

HX-Current-URL is a header anyone may send, up to the server's 8 KB a header: its path
goes into the sign-in address's `next`, quoted, where each "%" takes three characters,
and Django refuses a redirect past 16,384 characters (DisallowedRedirect). The request was
answered 400, not with the sign-in page, and each one logged an ERROR with its traceback.
The fix belongs in accounts/middleware.py (_back_to: a page whose quoted address would
not fit comes back to the request's own path, or to none), which another change is
moving, so the test waits for it."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.xfail(
    strict=True, reason="accounts/middleware.py._back_to passes any length to redirect_to_login"
)
def test_an_htmx_request_naming_a_page_of_6000_percent_signs_is_sent_to_sign_in(client, project):
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    response = client.get(
        keys,
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/" + "%" * 6000},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("accounts:login"))
