"""Dashboard pages for API keys: list, create (shown once), rename, roll (the new secret
shown once), suspend, resume, revoke.

Each view answers a whole page, or with htmx only the fragment it changed; the fragments
are {% partialdef %} blocks of apikeys/api_key_list.html. Changes send the `apiKeysChanged`
event, on which the key table reloads itself.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event

from accounts.decorators import (
    project_member_required,
    project_owner_required,
    verified_email_required,
)
from accounts.http import ProjectRequest
from accounts.models import Membership, Project
from accounts.sudo import sudo_required
from apikeys.forms import (
    ApiKeyCreateForm,
    ApiKeyRenameForm,
    ApiKeyRollForm,
    ApiKeySuspendForm,
    KeysTransferForm,
    key_name_taken_error,
)
from apikeys.models import ApiKey, KeyOrder, PersonalAccessToken
from apikeys.scopes import describe as describe_scope
from apikeys.services import (
    CannotRoll,
    KeyEnded,
    KeyNameTaken,
    OutOfPolicy,
    RolledMeanwhile,
    TooManyTokens,
    api_key_create,
    api_key_end_previous_secret,
    api_key_rename,
    api_key_resume,
    api_key_revoke,
    api_key_roll,
    api_key_suspend,
    api_keys_transfer_from_leavers,
)
from core.client_ip import client_ip
from core.htmx import render_panel
from core.redact import holds_secret
from core.shown_once import already_sent, form_id_new, form_id_of, sent_once, shown_once
from core.text_direction import quoted, text_isolated

TEMPLATE = "apikeys/api_key_list.html"
CHANGED = "apiKeysChanged"


def rolled_meanwhile_message(noun: str, meanwhile: RolledMeanwhile) -> str:
    """For the second send of a roll or regenerate form: the first one did it."""
    return (
        f"This {noun} was just given a new secret, {meanwhile.hint}, by the same form sent "
        "a moment before (a second click, or another tab); it was shown there, once. Nothing "
        f"more was changed. If nobody copied it, open this {noun}'s form again."
    )


def token_summary(token: ApiKey | PersonalAccessToken) -> str:
    """One line under a newly shown token: what it may do and when it stops working."""
    access = (
        "Permissions: " + ", ".join(token.permission_labels())
        if token.is_restricted
        else "Full access"
    )
    if scope := describe_scope(token):
        access += f" ({scope})"
    expiry = (
        f"expires {token.expires_at:%-d %b %Y, %H:%M} UTC"
        if token.expires_at
        else "does not expire"
    )
    return f"{access}; {expiry}."


# A key this close to its expiry is marked in the list (the reminder emails go out then).
EXPIRES_SOON = timedelta(days=7)

DEFAULT_SORT: str = KeyOrder.NEWEST.value
# Keys a page: the rows of a long list stay within a few screens.
PAGE_SIZE = 25


def _page(keys: list[ApiKey], number: str | None) -> Page[ApiKey]:
    # get_page() turns anything that is not a page number ("²", "-1", 10**5000) into the
    # first or the last page rather than an error.
    return Paginator(keys, PAGE_SIZE).get_page(number)


def _list_query(q: str, sort: str, page: int, ended_page: int) -> str:
    """The list's own address query: what the table reloads after a change, and what
    the pager's links keep. Defaults are left out, so the plain list stays `?`-less."""
    query = QueryDict(mutable=True)
    if q:
        query["q"] = q
    if sort != DEFAULT_SORT:
        query["sort"] = sort
    if page > 1:
        query["page"] = str(page)
    if ended_page > 1:
        query["ended_page"] = str(ended_page)
    return query.urlencode()


def _keys_context(request: ProjectRequest) -> dict[str, object]:
    # Search by name, notes or the start of the key as the list shows it (its hint).
    q = " ".join(request.GET.get("q", "").replace("\x00", "").split())[:100]
    # A whole secret is not searched for: the list's own address never holds one
    # (core.htmx.address_without_tokens), but a panel's (rename, roll…) renders the list too.
    if holds_secret("".join(q.split())):
        q = ""
    sort = request.GET.get("sort", DEFAULT_SORT)
    if sort not in KeyOrder.values:
        sort = DEFAULT_SORT
    found = ApiKey.objects.for_project(request.project).in_order(KeyOrder(sort))
    if q:
        found = found.matching(q)
    found = found.with_open_alert_counts().select_related(
        "created_by", "revoked_by", "suspended_by"
    )
    now = timezone.now()
    # The working keys are read whole (MAX_WORKING_KEYS_PER_PROJECT bounds them) for the
    # counts above the table; a suspended key is not over: it stays there, marked, with
    # Resume. Revoked and expired keys have no bound: only their page is read.
    active = list(found.active())
    ended_page = Paginator(found.with_refusals_since_end().ended(), PAGE_SIZE).get_page(
        request.GET.get("ended_page")
    )
    members = set(Membership.objects.for_project(request.project).values_list("user_id", flat=True))
    policy_days = request.project.max_key_lifetime_days
    for key in [*active, *ended_page.object_list]:
        # Keys outlive their creator: say so, so someone decides whether they still should.
        key.creator_left = key.created_by_id is not None and key.created_by_id not in members  # type: ignore[attr-defined]
        # Made before the lifetime policy, or longer-lived than it: they still work.
        key.out_of_policy = Project.lifetime_exceeds(policy_days, key.created_at, key.expires_at)  # type: ignore[attr-defined]
        key.expires_soon = key.expires_at is not None and now < key.expires_at <= now + EXPIRES_SOON  # type: ignore[attr-defined]
    out_of_policy = len([k for k in active if k.out_of_policy])  # type: ignore[attr-defined]
    creator_left = len([k for k in active if k.creator_left])  # type: ignore[attr-defined]
    active_page = _page(active, request.GET.get("page"))

    def link(page: int, ended_page_number: int) -> str:
        return "?" + _list_query(q, sort, page, ended_page_number)

    return {
        "q": q,
        "sort": sort,
        "sorts": KeyOrder.choices,
        "found": len(active) + ended_page.paginator.count,
        "creator_left": creator_left,
        "transfer_form": KeysTransferForm(project=request.project) if creator_left else None,
        "active_keys": active_page.object_list,
        "active_page": active_page,
        "ended_keys": ended_page.object_list,
        "ended_page": ended_page,
        "list_query": _list_query(q, sort, active_page.number, ended_page.number),
        "pages": {
            "active_previous": link(active_page.number - 1, ended_page.number),
            "active_next": link(active_page.number + 1, ended_page.number),
            "ended_previous": link(active_page.number, ended_page.number - 1),
            "ended_next": link(active_page.number, ended_page.number + 1),
        },
        "now": now,
        "out_of_policy": out_of_policy,
        "policy_days": policy_days,
    }


def _render(
    request: ProjectRequest, panel: str | None, context: dict[str, object], status: int = 200
) -> HttpResponse:
    return render_panel(
        request, TEMPLATE, panel, context, page=partial(_keys_context, request), status=status
    )


def _key(request: ProjectRequest, key_id: int) -> ApiKey:
    return get_object_or_404(
        ApiKey.objects.for_project(request.project).select_related("project"), pk=key_id
    )


@require_GET
@project_member_required
def api_key_list(request: ProjectRequest) -> HttpResponse:
    context = _keys_context(request)
    if request.htmx and request.htmx.target == "key-table":
        return render(request, f"{TEMPLATE}#key-table", context)
    return render(request, TEMPLATE, context)


@require_http_methods(["GET", "POST"])
@project_member_required
@verified_email_required
@sudo_required
@sent_once
def api_key_create_view(request: ProjectRequest) -> HttpResponse:
    if request.method == "GET":
        form = ApiKeyCreateForm(project=request.project)
        return _render(request, "create-form", {"form": form, "form_id": form_id_new()})

    form = ApiKeyCreateForm(request.POST, project=request.project)
    if sent := already_sent(
        request,
        made="created a key",
        advice="If nobody copied it, revoke that key in the list below and create a new one.",
        back=reverse("apikeys:api_key_list", args=[request.project.slug]),
        changed=CHANGED,
    ):
        return sent
    if not form.is_valid():
        return _render(
            request, "create-form", {"form": form, "form_id": form_id_of(request)}, status=422
        )

    try:
        api_key, token = api_key_create(
            project=request.project,
            name=form.cleaned_data["name"],
            created_by=request.user,
            permissions=form.chosen_permissions(),
            expires_at=form.expires_at(),
            ip=client_ip(request),
            agent_names=form.cleaned_data["agents"],
            agent_actions=form.chosen_agent_actions(),
            notes=form.cleaned_data["notes"],
        )
    except KeyNameTaken as taken:
        # Taken since the form's check: by this form sent from another tab, or by someone
        # else. Said as the check says it; no key was made.
        form.add_error("name", key_name_taken_error(taken.name))
    except OutOfPolicy as refused:  # the project's policy tightened since the form's check
        form.add_error(form.expiry_field(), str(refused))
    except TooManyTokens as full:  # the last free place taken since the form's check
        form.add_error("name", str(full))
    else:
        context = {"new_key": api_key, "token": token, "details": token_summary(api_key)}
        created = _render(request, "created", context, status=201)
        made = f"created the key {quoted(api_key.name)} ({api_key.hint})"
        return shown_once(request, created, changed=CHANGED, made=made)
    return _render(
        request, "create-form", {"form": form, "form_id": form_id_of(request)}, status=422
    )


@require_http_methods(["GET", "POST"])
@project_member_required
def api_key_rename_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = _key(request, key_id)
    # Ended: it stays for the record as it was, as a roll of it would say (409 on a POST,
    # from a list shown before it ended, which is reloaded: it still shows the key working).
    if request.method == "GET" and (ended := _ended_panel(request, api_key, "renamed")):
        return ended
    if request.method == "POST" and (ended := _ended_panel(request, api_key, "renamed", 409)):
        return trigger_client_event(ended, CHANGED)
    initial = {"name": api_key.name, "notes": api_key.notes}
    form = ApiKeyRenameForm(request.POST or None, initial=initial, api_key=api_key)
    if request.method == "POST" and form.is_valid():
        try:
            api_key_rename(
                api_key=api_key,
                name=form.cleaned_data["name"],
                notes=form.cleaned_data["notes"],
                by=request.user,
                ip=client_ip(request),
            )
        except KeyNameTaken as taken:  # taken since the form's check; the key is unchanged
            form.add_error("name", key_name_taken_error(taken.name))
            return _render(request, "rename-form", {"form": form, "key": api_key}, status=422)
        except KeyEnded:  # since the check above (the service read it again, as it is now)
            ended_now = _ended_panel(request, api_key, "renamed", status=409)
            assert ended_now is not None
            return trigger_client_event(ended_now, CHANGED)
        messages.success(request, f"Key renamed to {quoted(api_key.name)}.")
        if request.htmx:
            response = render(request, f"{TEMPLATE}#panel-closed", {})
            return trigger_client_event(response, CHANGED)
        return redirect("apikeys:api_key_list", slug=request.project.slug)
    status = 422 if request.method == "POST" else 200
    return _render(request, "rename-form", {"form": form, "key": api_key}, status=status)


@require_http_methods(["GET", "POST"])
@project_member_required
def api_key_revoke_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation, naming the key; POST revokes it, at once and for good.
    An expired key is not revoked: it refuses every call for good already, so a revocation
    would stop nothing and its message would claim it did (a list shown before it expired
    still offers Revoke)."""
    api_key = _key(request, key_id)
    expired = api_key.revoked_at is None and api_key.end_reason_at(
        timezone.now(), subject=quoted(api_key.name)
    )
    if expired and request.method == "GET":
        return _render(request, "ended-panel", {"key": api_key, "ended": expired, "done": ""})
    if expired:
        messages.info(request, f"{expired} It already refuses every call, for good.")
        return _panel_closed(request)
    if request.method == "GET":
        return _render(request, "revoke-confirm", {"key": api_key})
    if api_key_revoke(api_key=api_key, by=request.user, ip=client_ip(request)):
        messages.success(
            request,
            f"{quoted(api_key.name)} is revoked. Calls with it and with the client tokens it "
            "minted now get 401 expired_api_key.",
        )
    else:
        messages.info(request, f"{quoted(api_key.name)} was already revoked.")
    if request.htmx:
        response = render(request, f"{TEMPLATE}#panel-closed", {})
        return trigger_client_event(response, CHANGED)
    return redirect("apikeys:api_key_list", slug=request.project.slug)


def _transfer_refused(request: ProjectRequest, form: KeysTransferForm) -> HttpResponse:
    """The list with the hand-over form's error beside its select, where the form is (the
    banner above the table). htmx sent the form for the panel below: the table it sits in
    is swapped instead."""
    context = {**_keys_context(request), "transfer_form": form}
    if not request.htmx:
        return render(request, TEMPLATE, context, status=422)
    response = render(request, f"{TEMPLATE}#key-table", context, status=422)
    return reswap(retarget(response, "#key-table"), "outerHTML")


def _panel_closed(request: ProjectRequest) -> HttpResponse:
    """After a change: with htmx, close the panel and reload the table; else the list."""
    if request.htmx:
        response = render(request, f"{TEMPLATE}#panel-closed", {})
        return trigger_client_event(response, CHANGED)
    return redirect("apikeys:api_key_list", slug=request.project.slug)


@require_http_methods(["GET", "POST"])
@project_member_required
def api_key_suspend_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    """GET asks for a reason; POST suspends the key at once, until someone resumes it."""
    api_key = _key(request, key_id)
    if request.method == "GET" and (ended := _ended_panel(request, api_key, "suspended")):
        return ended
    form = ApiKeySuspendForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if api_key_suspend(
            api_key=api_key,
            by=request.user,
            reason=form.cleaned_data["reason"],
            ip=client_ip(request),
        ):
            messages.success(
                request,
                f"{quoted(api_key.name)} is suspended. Calls with it now get 401 suspended_api_key "
                "until you resume it.",
            )
        else:
            messages.info(request, _not_changed(api_key, "was already suspended."))
        return _panel_closed(request)
    status = 422 if request.method == "POST" else 200
    return _render(request, "suspend-form", {"form": form, "key": api_key}, status=status)


@require_POST
@project_member_required
@sudo_required
def api_key_resume_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    """Lift a suspension: the key works again from the next call."""
    api_key = _key(request, key_id)
    if api_key_resume(api_key=api_key, by=request.user, ip=client_ip(request)):
        messages.success(request, f"{quoted(api_key.name)} is resumed: calls with it work again.")
    else:
        messages.info(request, _not_changed(api_key, "was not suspended."))
    return _panel_closed(request)


def _ended_panel(
    request: ProjectRequest, api_key: ApiKey, done: str, status: int = 200
) -> HttpResponse | None:
    """For a revoked or expired key, a panel that says so in place of the rename, suspend
    or roll form (whose every answer would be that): a list shown before the key ended
    still offers them."""
    ended = api_key.end_reason_at(timezone.now(), subject=quoted(api_key.name))
    if ended is None:
        return None
    context = {"key": api_key, "ended": ended, "done": done}
    return _render(request, "ended-panel", context, status=status)


def _not_changed(api_key: ApiKey, otherwise: str) -> str:
    """Why a suspend or resume changed nothing: the key ended (revoked or expired, it
    never works again, so neither applies: the list the button was on was older), or
    `otherwise`."""
    api_key.refresh_from_db(fields=["revoked_at", "expires_at"])
    subject = quoted(api_key.name)
    ended = api_key.end_reason_at(timezone.now(), subject=subject)
    return f"{ended} It stops every call for good." if ended else f"{subject} {otherwise}"


@require_http_methods(["GET", "POST"])
@project_member_required
@verified_email_required
@sudo_required
@sent_once
def api_key_roll_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    """GET asks how long the current secret keeps working; POST gives the key a new
    secret, shown once, and the old one stops at the end of the chosen overlap."""
    api_key = _key(request, key_id)
    if request.method == "GET" and (ended := _ended_panel(request, api_key, "rolled")):
        return ended
    if request.method == "GET":
        form = ApiKeyRollForm(initial={"replacing": api_key.hint})
        context = {"form": form, "key": api_key, "form_id": form_id_new(), "now": timezone.now()}
        return _render(request, "roll-form", context)
    form = ApiKeyRollForm(request.POST)
    if sent := already_sent(
        request,
        made=f"rolled {quoted(api_key.name)}",
        advice="If nobody copied it, roll the key again in the list below.",
        back=reverse("apikeys:api_key_list", args=[request.project.slug]),
        changed=CHANGED,
    ):
        return sent
    context = {"form": form, "key": api_key, "form_id": form_id_of(request), "now": timezone.now()}
    if not form.is_valid():
        return _render(request, "roll-form", context, status=422)
    previous_hint = api_key.hint
    try:
        secret = api_key_roll(
            api_key=api_key,
            by=request.user,
            overlap=form.chosen_overlap(),
            ip=client_ip(request),
            replacing=form.replacing_hint(),
        )
    except CannotRoll as cannot:
        form.add_error(None, f"{cannot} Create a new key instead.")
        return _render(request, "roll-form", context, status=409)
    except RolledMeanwhile as meanwhile:
        form.add_error(None, rolled_meanwhile_message("key", meanwhile))
        return _render(request, "roll-form", context, status=409)
    api_key.refresh_from_db()
    assert api_key.previous_expires_at is not None
    if api_key.previous_expires_at <= timezone.now():
        old = f"The old secret {previous_hint} has stopped working."
    else:
        old = (
            f"The old secret {previous_hint} works until "
            f"{api_key.previous_expires_at:%-d %b %Y, %H:%M} UTC, then gets 401 expired_api_key."
        )
    context = {
        "new_key": api_key,
        "token": secret,
        "details": f"{old} {token_summary(api_key)}",
        "rolled": True,
    }
    made = f"rolled {quoted(api_key.name)} to the new secret {api_key.hint}"
    created = _render(request, "created", context, status=201)
    return shown_once(request, created, changed=CHANGED, made=made)


@require_POST
@project_member_required
def api_key_end_previous_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    """End a roll's overlap now: the previous secret is refused from the next call."""
    api_key = _key(request, key_id)
    if api_key_end_previous_secret(api_key=api_key, by=request.user, ip=client_ip(request)):
        messages.success(
            request,
            f"The old secret {api_key.previous_hint} of {quoted(api_key.name)} has stopped "
            "working: calls with it now get 401 expired_api_key.",
        )
    else:
        messages.info(request, f"{quoted(api_key.name)} has no old secret that still works.")
    return _panel_closed(request)


@require_POST
@project_owner_required
def api_keys_transfer_view(request: ProjectRequest) -> HttpResponse:
    """Owners hand the keys of people who left to a current member (the keys still work;
    someone now answers for them)."""
    form = KeysTransferForm(request.POST, project=request.project)
    if not form.is_valid():
        return _transfer_refused(request, form)
    to = form.cleaned_data["to"]
    try:
        count = api_keys_transfer_from_leavers(
            project=request.project, to=to, by=request.user, ip=client_ip(request)
        )
    except ValueError as refused:  # `to` left the project since the form's check
        messages.error(request, str(refused))
    else:
        keys = f"{count} key{'s' if count != 1 else ''}"
        messages.success(request, f"{keys} handed to {text_isolated(to.get_short_name())}.")
    return _panel_closed(request)
