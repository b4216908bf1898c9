"""The user's own page of personal access tokens: list, create (shown once), limit to
networks, rename, regenerate (the new secret shown once), revoke.

Same shape as the API key pages (apikeys/views/api_keys.py): one template, its panels as
partials, the table reloading itself on `personalTokensChanged`.
"""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import trigger_client_event

from accounts.decorators import login_required, verified_email_required
from accounts.http import AuthenticatedRequest
from accounts.models import Project
from accounts.sudo import sudo_required, sudo_required_to_change
from apikeys.forms import (
    AllowedNetworksForm,
    PersonalTokenCreateForm,
    PersonalTokenRegenerateForm,
    PersonalTokenRenameForm,
)
from apikeys.models import PersonalAccessToken
from apikeys.services import (
    CannotRoll,
    OutOfPolicy,
    Revoked,
    RolledMeanwhile,
    TooManyTokens,
    personal_token_create,
    personal_token_regenerate,
    personal_token_rename,
    personal_token_revoke,
    token_networks_set,
)
from apikeys.views.api_keys import rolled_meanwhile_message, token_summary
from core.client_ip import client_ip
from core.htmx import render_panel
from core.networks import network_around
from core.shown_once import already_sent, form_id_new, form_id_of, sent_once, shown_once
from core.text_direction import quoted

TEMPLATE = "apikeys/personal_token_list.html"
CHANGED = "personalTokensChanged"


# Revoked and expired tokens have no bound: the newest of them are shown, and how many
# more there are. (The working ones are bounded by MAX_WORKING_PATS_PER_PERSON.)
ENDED_SHOWN = 50


def _tokens_context(request: AuthenticatedRequest) -> dict[str, object]:
    tokens = PersonalAccessToken.objects.for_user(request.user)
    ended = list(tokens.ended()[: ENDED_SHOWN + 1])
    more = tokens.ended().count() - ENDED_SHOWN if len(ended) > ENDED_SHOWN else 0
    return {
        "active_tokens": list(tokens.active().prefetch_related("projects")),
        "ended_tokens": ended[:ENDED_SHOWN],
        "ended_more": more,
        "now": timezone.now(),
        # A project a token was limited to that its person has left is named by its slug
        # (which never changes), not its name: its owners may have renamed it since.
        "member_of": set(Project.objects.for_user(request.user).values_list("pk", flat=True)),
    }


def _render(
    request: AuthenticatedRequest, panel: str | None, context: dict[str, object], status: int = 200
) -> HttpResponse:
    return render_panel(
        request, TEMPLATE, panel, context, page=partial(_tokens_context, request), status=status
    )


@require_GET
@login_required
def personal_token_list(request: AuthenticatedRequest) -> HttpResponse:
    if request.htmx and request.htmx.target == "token-table":
        return render(request, f"{TEMPLATE}#token-table", _tokens_context(request))
    return render(request, TEMPLATE, _tokens_context(request))


@require_http_methods(["GET", "POST"])
@login_required
@verified_email_required
@sudo_required
@sent_once
def personal_token_create_view(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "GET":
        form = PersonalTokenCreateForm(user=request.user)
        return _render(request, "create-form", {"form": form, "form_id": form_id_new()})
    form = PersonalTokenCreateForm(request.POST, user=request.user)
    if sent := already_sent(
        request,
        made="created a token",
        advice="If nobody copied it, revoke that token in the list below and create a new one.",
        back=reverse("apikeys:personal_token_list"),
        changed=CHANGED,
    ):
        return sent
    if not form.is_valid():
        return _render(
            request, "create-form", {"form": form, "form_id": form_id_of(request)}, status=422
        )
    try:
        pat, token = personal_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            permissions=form.chosen_permissions(),
            projects=list(form.cleaned_data["projects"]),
            expires_at=form.expires_at(),
            ip=client_ip(request),
            agent_names=form.cleaned_data["agents"],
            agent_actions=form.chosen_agent_actions(),
        )
    except OutOfPolicy as refused:  # a project's policy tightened since the form's check
        form.add_error(form.expiry_field(), str(refused))
    except TooManyTokens as full:  # the last free place taken since the form's check
        form.add_error("name", str(full))
    else:
        details = token_summary(pat)
        if pat.expires_at is None:
            details += " Consider revoking it when you no longer need it."
        context = {"new_token": pat, "token": token, "details": details}
        created = _render(request, "created", context, status=201)
        made = f"created the token {quoted(pat.name)} ({pat.hint})"
        return shown_once(request, created, changed=CHANGED, made=made)
    return _render(
        request, "create-form", {"form": form, "form_id": form_id_of(request)}, status=422
    )


@require_http_methods(["GET", "POST"])
@login_required
def personal_token_revoke_view(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    """GET asks for confirmation naming the token; POST revokes it at once."""
    pat = get_object_or_404(PersonalAccessToken.objects.for_user(request.user), pk=token_id)
    if request.method == "GET":
        return _render(request, "revoke-confirm", {"pat": pat})
    if personal_token_revoke(personal_token=pat, by=request.user, ip=client_ip(request)):
        messages.success(request, f"{quoted(pat.name)} is revoked. Calls with it now get 401.")
    else:
        messages.info(request, f"{quoted(pat.name)} was already revoked.")
    if request.htmx:
        response = render(request, f"{TEMPLATE}#panel-closed", {})
        return trigger_client_event(response, CHANGED)
    return redirect("apikeys:personal_token_list")


def _unrevoked_of(request: AuthenticatedRequest, token_id: int) -> PersonalAccessToken:
    """One of the person's PATs that is not revoked: a revoked one is kept as a record,
    and its name and networks are not edited any more (its page offers no such button).
    An expired one may still be regenerated, so it can still be given both."""
    return get_object_or_404(
        PersonalAccessToken.objects.for_user(request.user).unrevoked(),
        pk=token_id,
    )


@require_http_methods(["GET", "POST"])
@login_required
@sudo_required_to_change
def personal_token_networks_view(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    """Where a PAT may be used from. With no list yet, the form starts from the network it
    was last used from, for its owner to check."""
    pat = _unrevoked_of(request, token_id)
    if request.method == "GET":
        start = pat.allowed_networks
        if not start and pat.last_used_ip:
            start = [network_around(pat.last_used_ip)]
        form = AllowedNetworksForm(initial={"networks": "\n".join(start)})
        return _render(request, "networks-form", {"form": form, "pat": pat})
    form = AllowedNetworksForm(request.POST)
    if not form.is_valid():
        return _render(request, "networks-form", {"form": form, "pat": pat}, status=422)
    networks = form.cleaned_data["networks"]
    try:
        changed = token_networks_set(pat, networks=networks, by=request.user, ip=client_ip(request))
    except Revoked:  # revoked since the page was read
        raise Http404("No such token.") from None
    if changed:
        where = f"{len(networks)} network{'s' if len(networks) != 1 else ''}" if networks else ""
        messages.success(
            request,
            f"{quoted(pat.name)} may now be used only from {where}."
            if networks
            else f"{quoted(pat.name)} may be used from any network again.",
        )
    else:
        messages.info(request, f"The allowed networks of {quoted(pat.name)} are as they were.")
    if request.htmx:
        response = render(request, f"{TEMPLATE}#panel-closed", {})
        return trigger_client_event(response, CHANGED)
    return redirect("apikeys:personal_token_list")


@require_http_methods(["GET", "POST"])
@login_required
def personal_token_rename_view(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    pat = _unrevoked_of(request, token_id)
    form = PersonalTokenRenameForm(request.POST or None, initial={"name": pat.name})
    if request.method == "POST" and form.is_valid():
        try:
            personal_token_rename(
                personal_token=pat,
                name=form.cleaned_data["name"],
                by=request.user,
                ip=client_ip(request),
            )
        except Revoked:  # revoked since the page was read
            raise Http404("No such token.") from None
        messages.success(request, f"Token renamed to {quoted(pat.name)}.")
        if request.htmx:
            response = render(request, f"{TEMPLATE}#panel-closed", {})
            return trigger_client_event(response, CHANGED)
        return redirect("apikeys:personal_token_list")
    status = 422 if request.method == "POST" else 200
    return _render(request, "rename-form", {"pat": pat, "form": form}, status=status)


@require_http_methods(["GET", "POST"])
@login_required
@verified_email_required
@sudo_required
@sent_once
def personal_token_regenerate_view(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    """GET asks for the new secret's expiry; POST gives the token a new secret, shown once,
    and the old one stops at once (GitHub's "Regenerate token")."""
    pat = get_object_or_404(PersonalAccessToken.objects.for_user(request.user), pk=token_id)
    if request.method == "GET":
        form = PersonalTokenRegenerateForm(personal_token=pat)
        context = {"pat": pat, "form": form, "form_id": form_id_new()}
        return _render(request, "regenerate-form", context)
    form = PersonalTokenRegenerateForm(request.POST, personal_token=pat)
    if sent := already_sent(
        request,
        made=f"regenerated {quoted(pat.name)}",
        advice="If nobody copied it, regenerate the token again in the list below.",
        back=reverse("apikeys:personal_token_list"),
        changed=CHANGED,
    ):
        return sent
    context = {"pat": pat, "form": form, "form_id": form_id_of(request)}
    if not form.is_valid():
        return _render(request, "regenerate-form", context, status=422)
    previous_hint = pat.hint
    try:
        secret = personal_token_regenerate(
            personal_token=pat,
            by=request.user,
            expires_at=form.expires_at(),
            ip=client_ip(request),
            replacing=form.replacing_hint(),
        )
    except CannotRoll as cannot:  # revoked: 409, as a roll of a revoked key is
        form.add_error(None, f"{cannot} Create a new token instead.")
        return _render(request, "regenerate-form", context, status=409)
    except RolledMeanwhile as meanwhile:
        form.add_error(None, rolled_meanwhile_message("token", meanwhile))
        return _render(request, "regenerate-form", context, status=409)
    except OutOfPolicy as out_of_policy:  # a project's policy tightened since the form
        form.add_error(form.expiry_field(), str(out_of_policy))
        return _render(request, "regenerate-form", context, status=422)
    except TooManyTokens as full:  # an expired token would work again, past the cap
        form.add_error(None, str(full))
        return _render(request, "regenerate-form", context, status=422)
    details = f"The old secret {previous_hint} has stopped working. {token_summary(pat)}"
    context = {"new_token": pat, "token": secret, "details": details, "rolled": True}
    made = f"regenerated {quoted(pat.name)} to the new secret {pat.hint}"
    created = _render(request, "created", context, status=201)
    return shown_once(request, created, changed=CHANGED, made=made)
