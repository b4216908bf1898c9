"""The account's Security page (authenticator app, recovery codes) and the sign-in's
second step. The checks themselves are in accounts/two_factor.py."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import login_required, verified_email_required
from accounts.forms import SecondFactorForm
from accounts.http import AuthenticatedRequest
from accounts.models import User
from accounts.passkeys import has_passkey
from accounts.sessions import (
    pending_step_done,
    pending_step_record,
    sessions_end_others,
    signed_in_elsewhere,
)
from accounts.sudo import sudo_required
from accounts.two_factor import (
    SecondFactorRequiredError,
    SetupBegunElsewhere,
    authenticator_of,
    enrolment_confirm,
    enrolment_pending,
    enrolment_start,
    has_authenticator_app,
    has_two_factor,
    last_factor_message,
    passkeys_of,
    recovery_codes_left,
    recovery_codes_regenerate,
    second_factor_check,
    two_factor_remove,
)
from audit.log import audit_record
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.shown_once import form_already_used, form_id_new, form_used, sent_once

TEMPLATE = "accounts/security.html"
# The sign-in's second step: how long it waits, and how many wrong codes it takes.
PENDING_KEY = "two_factor_pending"
PENDING_SECONDS = 300
WRONG_CODES_PER_SIGN_IN = 5
# And across sign-ins, per person: a password known to an attacker does not buy endless
# guesses at the code. Every attempt counts, the right ones too.
WRONG_CODES_PER_HOUR = 20
# The authenticator setup this browser began (its unconfirmed device's id): only it is
# shown and confirmed here (accounts.two_factor.enrolment_pending).
ENROLMENT_KEY = "totp_enrolment"


def _enrolment_of(request: AuthenticatedRequest) -> int | None:
    device_id = request.session.get(ENROLMENT_KEY)
    return device_id if isinstance(device_id, int) else None


def security_context(request: AuthenticatedRequest, **extra: Any) -> dict[str, Any]:
    device = authenticator_of(request.user)
    on = device is not None and device.confirmed_at is not None
    return {
        "device": device if on else None,
        "enrolment": None if on else enrolment_pending(request.user, _enrolment_of(request)),
        "codes_left": recovery_codes_left(request.user) if on else 0,
        "passkeys": passkeys_of(request.user),
        # The two forms that show recovery codes make them once (core.shown_once).
        "form_id": form_id_new(),
        **extra,
    }


@require_GET
@login_required
def account_security(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, TEMPLATE, security_context(request))


# Said where the page has no setup to show: the app was turned on, here or elsewhere.
APP_ALREADY_ON = "An authenticator app is already on."


@require_POST
@login_required
@verified_email_required
@sudo_required
def totp_setup(request: AuthenticatedRequest) -> HttpResponse:
    # An app of its own: a passkey is a second factor too, but no reason to refuse one.
    if has_authenticator_app(request.user):
        messages.info(request, APP_ALREADY_ON)
        return redirect("accounts:account_security")
    try:
        request.session[ENROLMENT_KEY] = enrolment_start(request.user).device_id
    except SetupBegunElsewhere:  # the same moment as another browser's setup or confirm
        if has_authenticator_app(request.user):
            messages.info(request, APP_ALREADY_ON)
        else:
            messages.error(request, "A setup was begun in another browser just now. Try again.")
        return redirect("accounts:account_security")
    return redirect(reverse("accounts:account_security") + "#setup")


@require_POST
@login_required
@verified_email_required
@sudo_required
@sent_once
def totp_confirm(request: AuthenticatedRequest) -> HttpResponse:
    # Only while the app it turned on still is: turned off and set up anew since (a tab
    # left open), its codes no longer work, and the form confirms the new setup.
    if has_authenticator_app(request.user):
        # Else turned on from another tab or browser: the page has no code field to show
        # an error beside, and says the app is on.
        if not _codes_already_shown(request):
            messages.info(request, APP_ALREADY_ON)
        return redirect("accounts:account_security")
    if enrolment_pending(request.user, _enrolment_of(request)) is None:
        # Started again in another browser (which ends this one's), or never begun here:
        # no code field on the page either.
        messages.error(request, "That setup is no longer waiting for a code. Set up the app again.")
        return redirect("accounts:account_security")
    form = SecondFactorForm(request.POST)
    codes = None
    had_one = has_two_factor(request.user)
    if form.is_valid():
        codes = enrolment_confirm(
            request.user,
            form.cleaned_data["code"],
            device_id=_enrolment_of(request),
            ip=client_ip(request),
        )
        if codes is None:
            form.add_error("code", "That code is not right. Check the app's clock, then try again.")
    if codes is None:
        context = security_context(request, confirm_form=form)
        return render(request, TEMPLATE, context, status=422)
    if not had_one:
        first_factor_added(request)
    return _codes_once(request, codes, turned_on=True)


def first_factor_added(request: AuthenticatedRequest) -> None:
    """A person's first second factor is on: their other sessions are signed out, as a new
    password signs them out. Each was signed in with the password alone, and would count
    as two-factor from now on (a project's two-factor requirement would let it in), though
    whoever holds it, a leaked password perhaps, was never asked for a second factor. This
    session has just shown the new factor. Later factors leave the others be: each of
    them has passed one."""
    current = request.session.session_key
    if signed_in_elsewhere(request.user, current_key=current):
        sessions_end_others(user=request.user, current_key=current, ip=client_ip(request))
        messages.info(request, "Your other signed-in sessions were signed out.")


def _codes_already_shown(request: AuthenticatedRequest) -> bool:
    """Whether this form already showed its codes: sent again (a reload of the codes'
    page), it would replace the set the person has just saved, without their noticing."""
    if not form_already_used(request):
        return False
    messages.info(
        request,
        # Not "they still work": newer ones (a fresh form, another tab) may have replaced them.
        "These recovery codes were already made and shown once, and no new ones were made. "
        "Only the set you made last works: if you did not save it, make new ones.",
    )
    return True


def _codes_once(
    request: AuthenticatedRequest, codes: list[str], *, turned_on: bool
) -> HttpResponse:
    response = render(
        request,
        "accounts/recovery_codes.html",
        {"codes": codes, "codes_text": "\n".join(codes), "turned_on": turned_on},
    )
    return form_used(request, response)


@require_POST
@login_required
@sudo_required
@sent_once
def recovery_codes_new(request: AuthenticatedRequest) -> HttpResponse:
    # Recovery codes stand in for the app's codes and are checked only while it is on
    # (second_factor_check): with passkeys alone (the app turned off in another tab),
    # new ones would be shown to save and never sign anyone in.
    if not has_authenticator_app(request.user) or _codes_already_shown(request):
        return redirect("accounts:account_security")
    return _codes_once(
        request, recovery_codes_regenerate(request.user, ip=client_ip(request)), turned_on=False
    )


@require_http_methods(["GET", "POST"])
@login_required
@sudo_required
def totp_remove(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "GET":
        return redirect("accounts:account_security")
    try:
        removed = two_factor_remove(request.user, ip=client_ip(request))
    except SecondFactorRequiredError as refusal:
        messages.error(request, last_factor_message(refusal))
        return redirect("accounts:account_security")
    if removed:
        messages.warning(
            request, "Two-factor authentication is off: your password alone now signs you in."
        )
    return redirect("accounts:account_security")


# The sign-in's second step --------------------------------------------------------------


def second_step_begin(
    request: HttpRequest, user: User, backend: str, next_url: str
) -> HttpResponse:
    """The password was right and the person has a second factor: remember who, briefly,
    in the (not yet signed-in) session, and ask for a code. The session gets a new key
    first, as login() gives one: a key planted in the browser before the password (session
    fixation) must not carry the step the password passed."""
    request.session.cycle_key()
    pending_step_record(request, user)
    request.session[PENDING_KEY] = {
        "user": user.pk,
        # What Django keeps in a signed-in session for the same end: a new password ends
        # the step, as it ends every session.
        "password": user.get_session_auth_hash(),
        "backend": backend,
        "at": time.time(),
        "next": next_url,
        "wrong": 0,
    }
    return redirect("accounts:login_code")


def pending_sign_in(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None
    user_id = pending.get("user")
    if not isinstance(user_id, int):
        return None
    user = User.objects.active().filter(pk=user_id).first()
    if user is None:
        return None
    if not constant_time_compare(str(pending.get("password", "")), user.get_session_auth_hash()):
        request.session.pop(PENDING_KEY, None)  # the password it passed is no longer theirs
        return None
    return user, pending


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    found = pending_sign_in(request)
    if found is None:
        messages.info(request, "Sign in again: the code step waits at most 5 minutes.")
        return redirect("accounts:login")
    user, pending = found
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ip = client_ip(request)
        bucket = f"second-factor:{user.pk}"
        # Counted before the code is checked (an atomic increment): parallel guesses cannot
        # all pass a read of the count and be counted only afterwards.
        if not throttle_allows(bucket, limit=WRONG_CODES_PER_HOUR, window_seconds=3600):
            form.add_error("code", "Too many wrong codes for this account. Try again in an hour.")
            return render(
                request, "accounts/login_code.html", _code_context(user, form), status=429
            )
        passed = second_factor_check(user, form.cleaned_data["code"], ip=ip)
        if passed:
            if passed == "recovery":
                left = recovery_codes_left(user)
                messages.warning(
                    request,
                    f"You used a recovery code; {left} left. Make new ones on the Security "
                    "page if you are running low.",
                )
            return HttpResponseRedirect(second_step_finish(request, user, pending, passed, ip))
        audit_record(action="user.two_factor_failed", actor=user, target=user, ip=ip)
        pending["wrong"] = pending.get("wrong", 0) + 1
        if pending["wrong"] >= WRONG_CODES_PER_SIGN_IN:
            del request.session[PENDING_KEY]
            messages.error(request, "Too many wrong codes. Sign in again.")
            return redirect("accounts:login")
        request.session[PENDING_KEY] = pending
        form.add_error("code", "That code is not right. Check it and try again.")
        return render(request, "accounts/login_code.html", _code_context(user, form), status=422)
    return render(request, "accounts/login_code.html", _code_context(user, form))


def _code_context(user: User, form: SecondFactorForm) -> dict[str, Any]:
    # A person with only passkeys has no code to type: the page offers the passkey alone.
    return {
        "form": form,
        "has_code": has_authenticator_app(user),
        "has_passkey": has_passkey(user),
    }


def second_step_finish(
    request: HttpRequest, user: User, pending: dict[str, Any], passed: str, ip: str | None
) -> str:
    """The second step passed (with "totp", "recovery" or "passkey"): sign in, and the
    address to go on to."""
    del request.session[PENDING_KEY]
    pending_step_done(request)
    login(request, user, backend=pending["backend"])
    audit_record(
        action="user.two_factor_passed", actor=user, target=user, ip=ip, metadata={"with": passed}
    )
    return pending.get("next") or resolve_url(settings.LOGIN_REDIRECT_URL)
