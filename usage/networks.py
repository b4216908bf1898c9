"""A key's allowed networks, edited on its usage page beside the addresses it was used
from: those addresses' networks are offered as the starting list."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from accounts.sudo import sudo_required_to_change
from apikeys.forms import AllowedNetworksForm
from apikeys.models import ApiKey
from apikeys.services import token_networks_set
from core.client_ip import client_ip
from core.networks import MAX_NETWORKS, network_around
from usage.models import UsageIp

TEMPLATE = "usage/networks.html"


def suggested_networks(api_key: ApiKey) -> list[str]:
    """The /24 or /48 networks of the addresses the key was used from, busiest first."""
    networks: list[str] = []
    addresses = (
        UsageIp.objects.filter(api_key=api_key)
        .order_by("-requests", "ip")
        .values_list("ip", flat=True)[:500]
    )
    for address in addresses:
        try:
            network = network_around(address)
        except ValueError:
            continue
        if network not in networks:
            networks.append(network)
        if len(networks) == MAX_NETWORKS:
            break
    return networks


def networks_context(api_key: ApiKey, form: AllowedNetworksForm | None = None) -> dict[str, object]:
    suggested = suggested_networks(api_key)
    if form is None:
        # No list yet: start from where the key has been used, for the owner to review.
        initial = api_key.allowed_networks or suggested
        form = AllowedNetworksForm(initial={"networks": "\n".join(initial)})
    return {"api_key": api_key, "networks_form": form, "suggested_networks": suggested}


@require_http_methods(["GET", "POST"])
@project_member_required
@sudo_required_to_change
def api_key_networks(request: ProjectRequest, key_id: int) -> HttpResponse:
    """POST sets the key's allowed networks (GET: its usage page, where the form is)."""
    api_key = get_object_or_404(ApiKey.objects.for_project(request.project), pk=key_id)
    usage_url = reverse("usage:api_key_usage", args=[request.project.slug, api_key.pk])
    if request.method == "GET":
        return redirect(usage_url + "#networks")
    form = AllowedNetworksForm(request.POST)
    if form.is_valid():
        networks = form.cleaned_data["networks"]
        try:
            changed = token_networks_set(
                api_key, networks=networks, by=request.user, ip=client_ip(request)
            )
        except ValidationError as invalid:  # the service's own check, the form's rules
            form.add_error("networks", invalid)
        else:
            if not changed:
                message = "The allowed networks are as they were."
            elif networks:
                message = (
                    f"“{api_key.name}” may now be used only from {len(networks)} "
                    f"network{'s' if len(networks) != 1 else ''}; calls from anywhere else "
                    "get 403 ip_not_allowed."
                )
            else:
                message = f"“{api_key.name}” may be used from any network again."
            messages.success(request, message)
            if request.htmx:
                return render(request, f"{TEMPLATE}#networks", networks_context(api_key))
            return redirect(usage_url + "#networks")
    context = networks_context(api_key, form)
    if request.htmx:
        return render(request, f"{TEMPLATE}#networks", context, status=422)
    return render(request, TEMPLATE, context, status=422)
