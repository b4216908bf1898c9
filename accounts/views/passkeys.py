"""Passkey pages and endpoints: adding, renaming and removing them on the Security page,
signing in with one alone, and using one as the sign-in's second step. The browser side
is static/js/passkeys.js: each ceremony is one POST for the options, the browser's
prompt, and one POST of its answer as JSON. The checks are in accounts/passkeys.py.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import login_required, verified_email_required
from accounts.http import AuthenticatedRequest
from accounts.middleware import next_without_tokens
from accounts.models import Passkey
from accounts.passkeys import (
    CHALLENGE_SECONDS,
    PasskeyRefused,
    authentication_options,
    challenge_cookie_name,
    passkey_authenticate,
    passkey_register,
    passkey_remove,
    passkey_rename,
    passkey_sign_in,
    registration_options,
    relying_party,
    sign_in_options,
)
from accounts.sudo import sudo_fresh, sudo_required
from accounts.two_factor import SecondFactorRequiredError, has_two_factor, last_factor_message
from accounts.views.two_factor import (
    PENDING_KEY,
    WRONG_CODES_PER_SIGN_IN,
    first_factor_added,
    pending_sign_in,
    second_step_finish,
    security_context,
)
from audit.log import audit_record
from core.client_ip import client_ip
from core.forms import NoTokenCharField
from core.strict_json import MAX_DEPTH, JsonRefused, strict_json
from core.text_direction import quoted
from core.validators import no_secret, single_line

# A registration answer with its attestation is a few kilobytes; nothing honest is larger.
MAX_BODY_BYTES = 64 * 1024
PASSWORDLESS_BACKEND = "django.contrib.auth.backends.ModelBackend"


class PasskeyNameForm(forms.Form):
    """The name a person gives a passkey, to tell theirs apart ("Work laptop")."""

    # Kept in the audit trail and the security notice mailed about the passkey.
    name = NoTokenCharField(
        label="Name",
        max_length=60,
        required=False,
        validators=[single_line, no_secret],
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class _BadRequest(Exception):
    pass


def _refusal(message: str, status: int = 400, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, read strictly (core/strict_json.py): hostile JSON is a
    400 that says what is wrong, never a 500."""
    if len(request.body) > MAX_BODY_BYTES:
        raise _BadRequest("The request is too large.")
    try:
        body = strict_json(request.body)
    except JsonRefused as refused:
        raise _BadRequest(f"The request's JSON is refused: {refused}.") from None
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("The request is not valid JSON.") from None
    except RecursionError:
        raise _BadRequest(f"The request's JSON is nested deeper than {MAX_DEPTH} levels.") from None
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        raise _BadRequest("The request must be a JSON object with a credential.")
    return body


def _options(options_json: str) -> HttpResponse:
    response = HttpResponse(options_json, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


# Adding, renaming, removing (Security page) ---------------------------------------------


@require_POST
@login_required
@verified_email_required
@sudo_required
def passkey_add(request: AuthenticatedRequest) -> HttpResponse:
    """Where the Add a passkey form goes without JavaScript, or when the last check of who
    you are is too old: past the sudo prompt, back to the page to add it there."""
    messages.info(request, "Choose Add a passkey, then follow your browser's prompt.")
    return redirect(reverse("accounts:account_security") + "#passkeys")


@require_POST
@login_required
@verified_email_required
def passkey_register_options(request: AuthenticatedRequest) -> HttpResponse:
    if not sudo_fresh(request):
        return _refusal("Confirm it is you first.", status=403, sudo=True)
    try:
        options = registration_options(
            session=request.session, user=request.user, rp=relying_party(request)
        )
    except PasskeyRefused as refused:
        return _refusal(str(refused), status=409)
    return _options(options)


@require_POST
@login_required
@verified_email_required
def passkey_register_verify(request: AuthenticatedRequest) -> HttpResponse:
    if not sudo_fresh(request):
        return _refusal("Confirm it is you first.", status=403, sudo=True)
    try:
        body = _body(request)
    except _BadRequest as bad:
        return _refusal(str(bad))
    name = body.get("name", "")
    form = PasskeyNameForm({"name": name if isinstance(name, str) else ""})
    if not form.is_valid():
        return _refusal(" ".join(str(e) for e in form.errors["name"]))
    had_one = has_two_factor(request.user)
    try:
        passkey = passkey_register(
            session=request.session,
            user=request.user,
            credential=body["credential"],
            name=form.cleaned_data["name"].strip(),
            rp=relying_party(request),
            ip=client_ip(request),
        )
    except PasskeyRefused as refused:
        return _refusal(str(refused))
    if not had_one:
        first_factor_added(request)
    messages.success(request, f"Passkey {quoted(passkey.name)} added. You can sign in with it now.")
    return JsonResponse({"redirect": reverse("accounts:account_security") + "#passkeys"})


@require_POST
@login_required
def passkey_rename_view(request: AuthenticatedRequest, passkey_id: int) -> HttpResponse:
    passkey = get_object_or_404(Passkey, pk=passkey_id, user=request.user)
    form = PasskeyNameForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["name"].strip():
        if form.is_valid():
            form.add_error("name", "Enter a name.")
        context = security_context(request, rename_form=form, rename_id=passkey.pk)
        return render(request, "accounts/security.html", context, status=422)
    passkey_rename(passkey=passkey, name=form.cleaned_data["name"].strip(), ip=client_ip(request))
    messages.success(request, "Passkey renamed.")
    return redirect(reverse("accounts:account_security") + "#passkeys")


@require_http_methods(["GET", "POST"])
@login_required
@sudo_required
def passkey_remove_view(request: AuthenticatedRequest, passkey_id: int) -> HttpResponse:
    passkey = get_object_or_404(Passkey, pk=passkey_id, user=request.user)
    if request.method == "GET":
        return redirect(reverse("accounts:account_security") + "#passkeys")
    try:
        passkey_remove(passkey=passkey, ip=client_ip(request))
    except SecondFactorRequiredError as refusal:
        messages.error(request, last_factor_message(refusal))
        return redirect(reverse("accounts:account_security") + "#passkeys")
    messages.warning(request, f"Passkey {quoted(passkey.name)} removed: it no longer signs you in.")
    return redirect(reverse("accounts:account_security") + "#passkeys")


@require_POST
@login_required
def passkey_sudo_options(request: AuthenticatedRequest) -> HttpResponse:
    """For the sudo prompt: the answer goes back with the prompt's form (accounts/sudo.py)."""
    return _options(
        authentication_options(
            session=request.session, rp=relying_party(request), purpose="sudo", user=request.user
        )
    )


# Signing in with a passkey alone ---------------------------------------------------------


# The challenge is this browser's cookie, not the session's: asked for by anyone signed
# out, a session for each would store a row per POST (accounts/passkeys.py). Strict: only
# our own pages' requests carry it.
_COOKIE_SAMESITE: Final[Literal["Strict"]] = "Strict"


@never_cache
@require_POST
def passkey_login_options(request: HttpRequest) -> HttpResponse:
    options, signed_challenge = sign_in_options(rp=relying_party(request))
    response = _options(options)
    response.set_cookie(
        challenge_cookie_name(),
        signed_challenge,
        max_age=CHALLENGE_SECONDS,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite=_COOKIE_SAMESITE,
    )
    return response


@never_cache
@require_POST
def passkey_login_verify(request: HttpRequest) -> HttpResponse:
    """A passkey with user verification is both factors: a full sign-in. Whatever the
    answer, the browser is told to forget the challenge: it was good for one try."""
    response = _login_verified(request)
    response.delete_cookie(challenge_cookie_name(), samesite=_COOKIE_SAMESITE)
    return response


def _login_verified(request: HttpRequest) -> HttpResponse:
    try:
        body = _body(request)
    except _BadRequest as bad:
        return _refusal(str(bad))
    ip = client_ip(request)
    try:
        passkey = passkey_sign_in(
            signed_challenge=request.COOKIES.get(challenge_cookie_name()),
            credential=body["credential"],
            rp=relying_party(request),
            ip=ip,
        )
    except PasskeyRefused as refused:
        return _refusal(str(refused))
    user = passkey.user
    request.session.pop(PENDING_KEY, None)
    login(request, user, backend=PASSWORDLESS_BACKEND)
    audit_record(
        action="user.passkey_signed_in",
        actor=user,
        target=user,
        ip=ip,
        metadata={"name": passkey.name},
    )
    # As the sign-in page's own `next` (accounts.views.sign_in): local, and without a token
    # (the body is anyone's to write; a token kept there is in the browser's history).
    next_url = body.get("next")
    if not isinstance(next_url, str) or not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    next_url = next_without_tokens(next_url) if next_url else ""
    return JsonResponse({"redirect": next_url or resolve_url(settings.LOGIN_REDIRECT_URL)})


# The sign-in's second step ---------------------------------------------------------------


def _gone() -> JsonResponse:
    return _refusal(
        "Sign in again: this step waits at most 5 minutes.",
        status=409,
        redirect=reverse("accounts:login"),
    )


@never_cache
@require_POST
def passkey_second_options(request: HttpRequest) -> HttpResponse:
    found = pending_sign_in(request)
    if found is None:
        return _gone()
    user, _ = found
    return _options(
        authentication_options(
            session=request.session,
            rp=relying_party(request),
            purpose="second_factor",
            user=user,
        )
    )


@never_cache
@require_POST
def passkey_second_verify(request: HttpRequest) -> HttpResponse:
    found = pending_sign_in(request)
    if found is None:
        return _gone()
    user, pending = found
    try:
        body = _body(request)
    except _BadRequest as bad:
        return _refusal(str(bad))
    ip = client_ip(request)
    try:
        passkey_authenticate(
            session=request.session,
            credential=body["credential"],
            rp=relying_party(request),
            purpose="second_factor",
            user=user,
            ip=ip,
        )
    except PasskeyRefused as refused:
        pending["wrong"] = pending.get("wrong", 0) + 1
        if pending["wrong"] >= WRONG_CODES_PER_SIGN_IN:
            del request.session[PENDING_KEY]
            return _gone()
        request.session[PENDING_KEY] = pending
        return _refusal(str(refused))
    return JsonResponse({"redirect": second_step_finish(request, user, pending, "passkey", ip)})
