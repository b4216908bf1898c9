"""Settings → Client tokens: the short-lived tokens a project's backends minted for
browsers. Active and recent ones, newest first; revoke one, or all that a key minted."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from apikeys.models import ApiKey, ClientToken, TokenStatus
from apikeys.services import client_token_revoke, client_tokens_revoke_for_key
from core.client_ip import client_ip

TEMPLATE = "apikeys/client_token_list.html"
PAGE_SIZE = 50
RECENT = timedelta(days=7)


def effective_status(token: ClientToken) -> tuple[TokenStatus, str]:
    """The token's status as the API sees it (ClientToken.end_reason_at), and, when it
    ended because of its minter, the reason."""
    now = timezone.now()
    own = token.status_at(now)
    if own is not TokenStatus.ACTIVE:
        return own, ""
    reason = token.end_reason_at(now)
    return (TokenStatus.ACTIVE, "") if reason is None else (TokenStatus.REVOKED, reason)


@require_GET
@project_member_required
def client_token_list(request: ProjectRequest) -> HttpResponse:
    now = timezone.now()
    tokens = (
        ClientToken.objects.for_project(request.project)
        .filter(Q(expires_at__gt=now - RECENT) | Q(created_at__gt=now - RECENT))
        .select_related("project", "api_key", "personal_token", "personal_token__user")
        .order_by("-id")
    )
    keys = ApiKey.objects.for_project(request.project).order_by("name")
    key_filter = request.GET.get("key", "")
    if key_filter.isdigit():
        tokens = tokens.filter(api_key_id=int(key_filter))
    before = request.GET.get("before", "")
    if before.isdigit():
        tokens = tokens.filter(pk__lt=int(before))
    page = list(tokens[: PAGE_SIZE + 1])
    rows = [(t, *effective_status(t)) for t in page[:PAGE_SIZE]]
    context = {
        "rows": rows,
        "keys": keys,
        "key_filter": key_filter,
        "older": page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None,
    }
    template = TEMPLATE + "#token-table" if request.htmx else TEMPLATE
    return render(request, template, context)


@require_http_methods(["POST"])
@project_member_required
def client_token_revoke_view(request: ProjectRequest, public_id: str) -> HttpResponse:
    token = get_object_or_404(ClientToken.objects.for_project(request.project), public_id=public_id)
    if client_token_revoke(client_token=token, by=request.user, ip=client_ip(request)):
        messages.success(request, f"Client token {token.public_id} is revoked.")
    else:
        messages.info(request, f"Client token {token.public_id} had already ended.")
    return redirect("apikeys:client_token_list", slug=request.project.slug)


@require_http_methods(["POST"])
@project_member_required
def client_tokens_revoke_all_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey.objects.for_project(request.project), pk=key_id)
    count = client_tokens_revoke_for_key(api_key=api_key, by=request.user, ip=client_ip(request))
    messages.success(
        request,
        f"Revoked {count} client token{'s' if count != 1 else ''} minted by “{api_key.name}”.",
    )
    return redirect("apikeys:client_token_list", slug=request.project.slug)
