"""Settings → Client tokens: the short-lived tokens a project's backends minted for
browsers. Active and recent ones, newest first; revoke one, or all that a key minted."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from accounts.sudo import sudo_required
from apikeys.forms import ClientTokenFilterForm
from apikeys.models import ApiKey, ClientToken, TokenStatus
from apikeys.services import client_token_revoke, client_tokens_revoke_for_key
from core.client_ip import client_ip
from core.htmx import render_page_or_fragment
from core.paging import keyset_page
from core.text_direction import quoted

TEMPLATE = "apikeys/client_token_list.html"
PAGE_SIZE = 50
NEWEST_FIRST = ("-id",)
RECENT = timedelta(days=7)


def effective_status(token: ClientToken) -> tuple[TokenStatus, str]:
    """The token's status as the API sees it (ClientToken.end_reason_at), and, when it
    ended because of its minter, the reason."""
    now = timezone.now()
    own = token.status_at(now)
    if own is TokenStatus.REVOKED and token.revoked_at is None:
        return own, token.end_reason_at(now) or ""  # with all its key's: said so
    if own is not TokenStatus.ACTIVE:
        return own, ""
    reason = token.end_reason_at(now)
    if reason is not None:
        return TokenStatus.REVOKED, reason
    if token.api_key is not None and token.api_key.suspended_at is not None:
        return TokenStatus.SUSPENDED, "The API key that minted it is suspended."
    return TokenStatus.ACTIVE, ""


@require_GET
@project_member_required
def client_token_list(request: ProjectRequest) -> HttpResponse:
    form = ClientTokenFilterForm(request.GET, project=request.project)
    context: dict[str, object] = {"form": form}
    if form.is_valid():
        now = timezone.now()
        tokens = (
            ClientToken.objects.for_project(request.project)
            .alive_since(now - RECENT)
            .select_related("project", "api_key", "personal_token", "personal_token__user")
            .with_minters_standing()
        )
        if key := form.cleaned_data["key"]:
            tokens = tokens.minted_by(key)
        before = form.cleaned_data["before"]
        page = keyset_page(
            tokens, order=NEWEST_FIRST, following=(before,) if before else None, size=PAGE_SIZE
        )
        older = ""
        if page.next:
            params = {"key": key.pk} if key else {}
            older = "?" + urlencode({**params, "before": page.next[0]})
        context.update(
            rows=[(t, *effective_status(t)) for t in page.rows], key=key, older_url=older
        )
    # A history restore (htmx's cache missed) gets the whole page, which htmx puts in
    # place of the body; the key filter by htmx, the table alone.
    return render_page_or_fragment(
        request, TEMPLATE, context, fragment="token-table", valid=form.is_valid()
    )


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
@sudo_required
def client_tokens_revoke_all_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey.objects.for_project(request.project), pk=key_id)
    if client_tokens_revoke_for_key(api_key=api_key, by=request.user, ip=client_ip(request)):
        messages.success(
            request,
            f"Every client token {quoted(api_key.name)} had minted until now is revoked: browsers "
            "using them lose access at once. Those it mints from now on work.",
        )
    else:
        messages.info(request, f"{quoted(api_key.name)} has not minted any client tokens.")
    return redirect("apikeys:client_token_list", slug=request.project.slug)
