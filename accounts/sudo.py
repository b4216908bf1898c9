"""Sudo mode: before a sensitive action (minting or rolling a credential, changing what
limits one (its allowed networks, a suspension), revoking every client token, changing
members, roles or the origins allowlist, turning off the second factor, changing which
alerts are emailed to oneself), a person whose last check is older than
SUDO_MODE_SECONDS (10 minutes) is asked for their password or a second-factor code
again, as GitHub's sudo mode and Clerk's reverification do. A borrowed, unlocked laptop
then cannot mint keys, make a leaked one work again, nor silence the alerts of its use.

The action then continues where it was: the prompt carries the original request (its
address, method and form fields) and, once passed, the same view answers it as if it had
just arrived. With htmx, a prompt for a dialog opens in the dialog and the dialog then
shows what was asked; any other htmx request gets the prompt as the page's content.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import DisallowedRedirect
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.utils.http import MAX_URL_LENGTH
from django.views.decorators.http import require_POST

from accounts.decorators import login_required, project_frame
from accounts.forms import SudoForm
from accounts.http import AuthenticatedRequest
from accounts.passkeys import PasskeyRefused, has_passkey, passkey_authenticate, relying_party
from accounts.two_factor import has_authenticator_app, has_two_factor, second_factor_check
from audit.log import audit_record
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.htmx import page_without_tokens, without_tokens
from core.http import local_path
from core.redact import holds_token, secrets_stood_in
from core.strict_json import strict_json

SESSION_KEY = "sudo_at"
# Answers a person may give in 15 minutes before the prompt refuses to check more.
FAILURES_PER_15_MINUTES = 10
# Form fields never carried through the prompt.
_NOT_CARRIED = {
    "csrfmiddlewaretoken",
    "sudo_password",
    "sudo_code",
    "sudo_passkey",
    "sudo_next",
    "sudo_method",
    "sudo_back",
}


def sudo_fresh(request: HttpRequest) -> bool:
    at = request.session.get(SESSION_KEY)
    return isinstance(at, int | float) and time.time() - at < settings.SUDO_MODE_SECONDS


def sudo_mark(request: HttpRequest) -> None:
    request.session[SESSION_KEY] = time.time()


def sudo_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Ask again for the password or a code when the last check is too old."""

    @wraps(view)
    def wrapped(request: AuthenticatedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        passed_now = getattr(request, "sudo_passed_now", False)  # set by sudo_confirm
        if not request.user.is_authenticated or passed_now or sudo_fresh(request):
            return view(request, *args, **kwargs)
        # The address is written into the prompt (a hidden field): never a token in it.
        next_url = without_tokens(request.get_full_path())
        return _prompt(request, SudoForm(user=request.user), next_url=next_url)

    wrapped.sudo_protected = True  # type: ignore[attr-defined]
    return wrapped


def _local_address(request: HttpRequest, url: str) -> str:
    """`url` if it is an address of this site (core.http.local_path), else "". Django
    checks no address past 2,048 characters (MAX_URL_LENGTH): it calls each one foreign,
    and the prompt, once answered, went home instead of where the person was going (a
    page asked with a long query, a search or a filter). Of a long one the path is
    checked, everything before its query: the query cannot lead to another site once the
    path is of this one."""
    if len(url) <= MAX_URL_LENGTH or "\x00" in url:
        return local_path(request, url)
    return url if local_path(request, url.partition("?")[0]) else ""


def _posted_address(request: HttpRequest, field: str) -> str:
    """The address the prompt's hidden `field` carried back, if of this site, without a
    token as the first prompt wrote it (a wrong answer writes it into the prompt again,
    and a right one goes there); "" for none. A hand-edited form can send any."""
    return page_without_tokens(_local_address(request, request.POST.get(field, ""))) or ""


def _carried(request: HttpRequest) -> list[tuple[str, str]]:
    if request.method != "POST":
        return []
    # Written into the prompt's page: a secret pasted into a field is not (the form it is
    # sent on to refuses the stand-in as it would the secret).
    return [
        (name, secrets_stood_in(value) if holds_token(value) else value)
        for name, values in request.POST.lists()
        if name not in _NOT_CARRIED
        for value in values
    ]


def _back_url(request: HttpRequest, *, next_url: str, method: str) -> str:
    """Where the prompt's Cancel goes: the page the person was on when it interrupted them
    (htmx names it; a browser sends it as the referrer), as a browser's Back would. Home
    when neither says, or when that page is the very one that asks (it would ask again)."""
    for url in (request.headers.get("HX-Current-URL", ""), request.headers.get("Referer", "")):
        try:
            parts = urlsplit(url)
        except ValueError:  # a bracket without its pair: anyone can send that header
            continue
        if parts.netloc and parts.netloc != request.get_host():
            continue
        back = without_tokens(
            _local_address(request, urlunsplit(("", "", parts.path, parts.query, "")))
        )
        if back and not (method == "GET" and back == next_url):
            return back
    return reverse("home")


def _prompt(
    request: AuthenticatedRequest,
    form: SudoForm,
    *,
    next_url: str,
    method: str | None = None,
    carried: list[tuple[str, str]] | None = None,
    back_url: str = "",
    status: int = 200,
) -> HttpResponse:
    method = method or request.method or "GET"
    context = {
        "form": form,
        "next_url": next_url,
        "method": method,
        "back_url": back_url or _back_url(request, next_url=next_url, method=method),
        "carried": _carried(request) if carried is None else carried,
        "has_two_factor": has_two_factor(request.user),
        "has_authenticator_app": has_authenticator_app(request.user),
        "has_passkey": has_passkey(request.user),
        "minutes": settings.SUDO_MODE_SECONDS // 60,
    }
    in_dialog = bool(request.htmx) and request.htmx.target == "key-panel"
    if in_dialog:
        return render(request, "accounts/sudo.html#sudo-panel", context, status=status)
    if request.htmx:
        response = render(request, "accounts/sudo.html#sudo-main", context, status=status)
        response["HX-Retarget"] = "#main"
        response["HX-Reswap"] = "innerHTML"
        response["HX-Push-Url"] = "false"
        return response
    return render(request, "accounts/sudo.html", context, status=status)


@require_POST
@login_required
def sudo_confirm(request: AuthenticatedRequest) -> HttpResponse:
    """Check the password or code, then answer the carried request with its own view."""
    next_url = _posted_address(request, "sudo_next") or reverse("home")
    method = "POST" if request.POST.get("sudo_method") == "POST" else "GET"
    carried = _carried(request)
    # The page to go back to, as the first prompt worked it out (this POST's own referrer
    # is the prompt).
    back_url = _posted_address(request, "sudo_back") or reverse("home")
    form = SudoForm(request.POST, user=request.user)
    ip = client_ip(request)

    def again(*, status: int) -> HttpResponse:
        """The prompt once more, with the form's errors and the same request carried, in
        the frame of the project page it stands in for (its header and tabs)."""
        project_frame(request, path=urlsplit(next_url).path)
        return _prompt(
            request,
            form,
            next_url=next_url,
            method=method,
            carried=carried,
            back_url=back_url,
            status=status,
        )

    # Every answer counts, before it is checked: parallel guesses cannot slip past a count
    # that is read first and written after.
    if not throttle_allows(
        f"sudo:{request.user.pk}", limit=FAILURES_PER_15_MINUTES, window_seconds=900
    ):
        form.is_valid()
        form.add_error(None, "Too many wrong answers. Wait 15 minutes, then try again.")
        return again(status=429)
    if not _passes_any(request, form, ip):
        audit_record(action="user.sudo_failed", actor=request.user, target=request.user, ip=ip)
        return again(status=422)
    sudo_mark(request)
    audit_record(action="user.sudo_passed", actor=request.user, target=request.user, ip=ip)
    return _continue(request, next_url, method, carried)


def _passes_any(request: AuthenticatedRequest, form: SudoForm, ip: str | None) -> bool:
    """The password, a code, or a passkey (static/js/passkeys.js puts the browser's answer
    in `sudo_passkey`, so the carried request goes on as with the others)."""
    answer = request.POST.get("sudo_passkey", "")
    if not answer:
        return form.is_valid() and _passes(request, form, ip)
    form.is_valid()
    form.errors.clear()  # no password or code is expected beside a passkey
    try:
        credential = strict_json(answer)
        if not isinstance(credential, dict):
            raise ValueError("not an object")
        passkey_authenticate(
            session=request.session,
            credential=credential,
            rp=relying_party(request),
            purpose="sudo",
            user=request.user,
            ip=ip,
        )
    except PasskeyRefused as refused:
        form.add_error(None, str(refused))
        return False
    except (ValueError, RecursionError):
        form.add_error(None, "The passkey's answer could not be read. Try again.")
        return False
    return True


def _passes(request: AuthenticatedRequest, form: SudoForm, ip: str | None) -> bool:
    password = form.cleaned_data.get("sudo_password") or ""
    code = form.cleaned_data.get("sudo_code") or ""
    # Checked without the hash's upgrade that User.check_password makes: an upgraded hash
    # changes what every session of the person is checked against, and signed this
    # session (and the others) out the moment the prompt passed. Signing in upgrades it.
    if password and check_password(password, request.user.password):
        return True
    if code and second_factor_check(request.user, code, ip=ip):
        return True
    form.add_error(
        "sudo_code" if code and not password else "sudo_password",
        "That is not right. Check it and try again.",
    )
    return False


def _continue(
    request: AuthenticatedRequest, next_url: str, method: str, carried: list[tuple[str, str]]
) -> HttpResponse:
    """The carried request, answered by its own view: only views that ask for sudo are
    continued this way (anything else is simply opened)."""
    parts = urlsplit(next_url)
    try:
        match = resolve(parts.path)
    except Resolver404:
        match = None
    if match is None or not getattr(match.func, "sudo_protected", False):
        try:
            return redirect(next_url)
        except DisallowedRedirect:  # past the 16,384 characters Django redirects to
            return redirect(parts.path)
    request.method = method
    request.GET = QueryDict(parts.query)
    post = QueryDict(mutable=True)
    for name, value in carried:
        post.appendlist(name, value)
    post._mutable = False
    request.POST = post if method == "POST" else QueryDict()  # type: ignore[assignment]
    request.path = request.path_info = parts.path
    request.resolver_match = match
    request.sudo_passed_now = True  # type: ignore[attr-defined]
    return match.func(request, *match.args, **match.kwargs)


def sudo_required_to_change(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """sudo_required for a view that shows a form on GET and changes things on POST: only
    the change asks (reading the alert rules needs no fresh check)."""
    guarded = sudo_required(view)

    @wraps(view)
    def wrapped(request: AuthenticatedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            return view(request, *args, **kwargs)
        return guarded(request, *args, **kwargs)

    wrapped.sudo_protected = True  # type: ignore[attr-defined]
    return wrapped
