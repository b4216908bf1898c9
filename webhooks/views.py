"""Settings → Webhooks: a project's alert destinations, for its owners only.

Members do not see this tab: an endpoint's address can itself be a secret (a Slack
incoming-webhook URL is one), and everything here changes where alerts go.
The add form and the shown-once secret are the #key-panel dialogs of the key pages.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import project_owner_required, verified_email_required
from accounts.http import ProjectRequest
from accounts.models import Membership
from accounts.sudo import sudo_required
from core.client_ip import client_ip
from core.htmx import render_panel, wants_fragment
from core.shown_once import already_sent, form_id_new, form_id_of, sent_once, shown_once
from webhooks.forms import WebhookCreateForm
from webhooks.models import MAX_ENDPOINTS_PER_PROJECT, WebhookDelivery, WebhookEndpoint
from webhooks.retention import KEEP
from webhooks.services import (
    TooManyEndpoints,
    delivery_retry_now,
    webhook_create,
    webhook_delete,
    webhook_disable,
    webhook_secret_roll,
    webhook_send_test,
)

TEMPLATE = "webhooks/webhook_list.html"
DETAIL = "webhooks/webhook_detail.html"
CHANGED = "webhooksChanged"
LOG_SIZE = 50


def _list_context(request: ProjectRequest) -> dict[str, object]:
    endpoints = list(
        WebhookEndpoint.objects.for_project(request.project)
        .with_last_delivery()
        .select_related("created_by")
    )
    _mark_creators_who_left(request, endpoints)
    return {
        "endpoints": endpoints,
        "limit": MAX_ENDPOINTS_PER_PROJECT,
        "at_limit": len(endpoints) >= MAX_ENDPOINTS_PER_PROJECT,
    }


def _mark_creators_who_left(request: ProjectRequest, endpoints: list[WebhookEndpoint]) -> None:
    """An endpoint outlives the person who added it, as a key does: say so (`creator_left`),
    so that an owner decides whether the project's alerts should still go there."""
    members = set(Membership.objects.for_project(request.project).values_list("user_id", flat=True))
    for endpoint in endpoints:
        left = endpoint.created_by_id is not None and endpoint.created_by_id not in members
        endpoint.creator_left = left  # type: ignore[attr-defined]


def _render(
    request: ProjectRequest, panel: str | None, context: dict[str, object], status: int = 200
) -> HttpResponse:
    return render_panel(
        request, TEMPLATE, panel, context, page=partial(_list_context, request), status=status
    )


def _endpoint(request: ProjectRequest, endpoint_id: int) -> WebhookEndpoint:
    # Another project's endpoint does not exist here.
    return get_object_or_404(
        WebhookEndpoint.objects.for_project(request.project).select_related(
            "project", "created_by"
        ),
        pk=endpoint_id,
    )


def _queued(request: ProjectRequest, what: str) -> None:
    # Sending runs every 10 s (WEBHOOK_DELIVERY_EVERY_SECONDS), as the README and the
    # list and log pages say: the owner needs when, not which runner.
    messages.success(
        request, f"{what} is queued and goes out within seconds; the log below shows how it went."
    )


@require_GET
@project_owner_required
def webhook_list(request: ProjectRequest) -> HttpResponse:
    template = TEMPLATE + "#endpoint-table" if request.htmx else TEMPLATE
    return render(request, template, _list_context(request))


@require_http_methods(["GET", "POST"])
@project_owner_required
@verified_email_required
@sudo_required
@sent_once
def webhook_create_view(request: ProjectRequest) -> HttpResponse:
    if request.method == "GET":
        return _render(
            request, "create-form", {"form": WebhookCreateForm(), "form_id": form_id_new()}
        )
    form = WebhookCreateForm(request.POST)
    if sent := already_sent(
        request,
        made="added an endpoint",
        advice="If nobody copied its signing secret, roll it on the endpoint's page, from the "
        "list below.",
        back=reverse("webhooks:webhook_list", args=[request.project.slug]),
        changed=CHANGED,
    ):
        return sent
    context: dict[str, object] = {"form": form, "form_id": form_id_of(request)}
    if not form.is_valid():
        return _render(request, "create-form", context, status=422)
    try:
        endpoint, secret = webhook_create(
            project=request.project,
            url=form.cleaned_data["url"],
            format=form.cleaned_data["format"],
            min_severity=form.cleaned_data["min_severity"],
            created_by=request.user,
            ip=client_ip(request),
        )
    except TooManyEndpoints as too_many:
        form.add_error(None, str(too_many))
        return _render(request, "create-form", context, status=409)
    created = {"endpoint": endpoint, "secret": secret}
    return shown_once(
        request,
        _render(request, "created", created, status=201),
        changed=CHANGED,
        made=f"added the endpoint {endpoint.display_url}",
    )


def _detail_context(request: ProjectRequest, endpoint: WebhookEndpoint) -> dict[str, object]:
    _mark_creators_who_left(request, [endpoint])
    deliveries = list(WebhookDelivery.objects.for_endpoint(endpoint).newest_first()[:LOG_SIZE])
    return {
        "endpoint": endpoint,
        "deliveries": deliveries,
        # While one waits for the scheduler's next run, the log reloads itself until it
        # has gone (the page's own fragment, every few seconds).
        "waiting": endpoint.disabled_at is None and any(d.waiting for d in deliveries),
        "refresh_seconds": settings.WEBHOOK_LOG_REFRESH_SECONDS,
        "log_size": LOG_SIZE,
        "kept_days": KEEP.days,
        "roll_form_id": form_id_new(),
    }


@require_GET
@project_owner_required
def webhook_detail(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    context = _detail_context(request, endpoint)
    # The log's own reload gets the log; anything else (a history restore too) the page.
    template = DETAIL + "#deliveries" if wants_fragment(request) else DETAIL
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@project_owner_required
def webhook_test_view(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    if endpoint.disabled_at is not None:
        messages.error(request, "This endpoint is disabled: nothing is sent to it.")
    else:
        try:
            delivery = webhook_send_test(endpoint=endpoint, by=request.user, ip=client_ip(request))
        except WebhookEndpoint.DoesNotExist:
            raise Http404("Another owner deleted this endpoint.") from None
        if delivery is None:
            messages.info(request, "A test event is already queued: see the log below.")
        else:
            _queued(request, f"Test event {delivery.event_id}")
    return redirect("webhooks:webhook_detail", slug=request.project.slug, endpoint_id=endpoint.pk)


@require_POST
@project_owner_required
def webhook_retry_view(request: ProjectRequest, endpoint_id: int, delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    delivery = get_object_or_404(WebhookDelivery.objects.for_endpoint(endpoint), pk=delivery_id)
    if endpoint.disabled_at is not None:
        messages.error(request, "This endpoint is disabled: nothing is sent to it.")
    elif delivery.status == WebhookDelivery.Status.SUCCEEDED:
        messages.info(request, f"{delivery.event_id} was already delivered.")
    else:
        try:
            queued = delivery_retry_now(delivery=delivery, by=request.user, ip=client_ip(request))
        except WebhookDelivery.DoesNotExist:
            raise Http404("Another owner deleted this endpoint.") from None
        if queued:
            _queued(request, delivery.event_id)
        else:
            messages.info(request, f"{delivery.event_id} is already queued or being sent.")
    return redirect("webhooks:webhook_detail", slug=request.project.slug, endpoint_id=endpoint.pk)


@require_POST
@project_owner_required
@verified_email_required
@sudo_required
@sent_once
def webhook_secret_roll_view(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    """A new signing secret, shown on the endpoint's page this once (a leaked one no
    longer means deleting the endpoint, its log and what waits for it)."""
    endpoint = _endpoint(request, endpoint_id)
    if endpoint.format != WebhookEndpoint.Format.GENERIC:
        raise Http404("A Slack endpoint has no signing secret.")
    if sent := already_sent(
        request,
        made=f"rolled the signing secret of {endpoint.display_url}",
        advice="If nobody copied it, roll it again.",
        back=reverse("webhooks:webhook_detail", args=[request.project.slug, endpoint.pk]),
        changed=CHANGED,
    ):
        return sent
    try:
        secret = webhook_secret_roll(endpoint=endpoint, by=request.user, ip=client_ip(request))
    except WebhookEndpoint.DoesNotExist:
        raise Http404("Another owner deleted this endpoint.") from None
    context = {**_detail_context(request, endpoint), "secret": secret}
    made = f"rolled the signing secret of {endpoint.display_url}"
    return shown_once(request, render(request, DETAIL, context), changed=CHANGED, made=made)


@require_POST
@project_owner_required
@sudo_required
def webhook_disable_view(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        disabled = webhook_disable(endpoint=endpoint, by=request.user, ip=client_ip(request))
    except WebhookEndpoint.DoesNotExist:
        raise Http404("Another owner deleted this endpoint.") from None
    if disabled:
        messages.success(request, f"{endpoint.display_url} is disabled: nothing more is sent.")
    else:
        messages.info(request, f"{endpoint.display_url} was already disabled.")
    return redirect("webhooks:webhook_list", slug=request.project.slug)


@require_POST
@project_owner_required
@sudo_required
def webhook_delete_view(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    label = endpoint.display_url
    try:
        webhook_delete(endpoint=endpoint, by=request.user, ip=client_ip(request))
    except WebhookEndpoint.DoesNotExist:
        raise Http404("Another owner deleted this endpoint.") from None
    messages.success(request, f"{label} is deleted, with its delivery log.")
    return redirect("webhooks:webhook_list", slug=request.project.slug)
