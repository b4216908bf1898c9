"""A key's allowed networks, edited on its usage page beside the addresses it was used
from: those addresses' networks are offered as the starting list. Only the key's own
addresses (calls made with its secret): the list governs those alone, never the client
tokens it mints (api/authentication.py), whose browsers' networks offered here would let
the secret be used from anywhere its customers are."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from accounts.sudo import sudo_required_to_change
from apikeys.forms import AllowedNetworksForm
from apikeys.models import ApiKey
from apikeys.services import token_networks_set
from core.client_ip import client_ip
from core.networks import MAX_NETWORKS, network_around
from core.text_direction import quoted
from usage.key_usage import new_since
from usage.models import UsageIp

TEMPLATE = "usage/networks.html"

# At most this many of the networks left out are named under the field; the rest counted.
LEFT_OUT_SHOWN = 10


def suggested_networks(api_key: ApiKey) -> tuple[list[str], list[str]]:
    """The /24 or /48 networks of the addresses the key itself was used from (not its
    client tokens'), busiest first, to offer as its allowed networks; and those left out
    of them: networks first seen in the last 24 hours (since new_since(), where the page
    marks an address new), while the key has older ones. The page is opened most often
    when a key may have leaked, and then the newest network is the leak's: offered with
    the rest, it would be allowed by the very save meant to shut it out. A key used only
    within that day has nothing older to go by, and is offered all it has. An address
    from which every call was refused at the door (UsageIp.admitted: the key suspended,
    revoked, or outside its list) is where it was tried from, and is never offered."""
    first_seen: dict[str, datetime] = {}
    addresses = (
        UsageIp.objects.filter(api_key=api_key, admitted__gt=0)
        .own()
        .order_by("-requests", "ip")
        .values_list("ip", "first_seen")[:500]
    )
    for address, seen in addresses:
        try:
            network = network_around(address)
        except ValueError:
            continue
        first_seen[network] = min(seen, first_seen.get(network, seen))
    since = new_since(timezone.now())
    older = [network for network, seen in first_seen.items() if seen < since]
    if not older:
        return list(first_seen)[:MAX_NETWORKS], []
    return older[:MAX_NETWORKS], [network for network in first_seen if network not in older]


def networks_context(api_key: ApiKey, form: AllowedNetworksForm | None = None) -> dict[str, object]:
    suggested, left_out = suggested_networks(api_key)
    if form is None:
        # No list yet: start from where the key has been used, for the owner to review.
        initial = api_key.allowed_networks or suggested
        form = AllowedNetworksForm(initial={"networks": "\n".join(initial)})
    return {
        "api_key": api_key,
        "networks_form": form,
        "suggested_networks": suggested,
        "networks_left_out": left_out[:LEFT_OUT_SHOWN],
        "networks_left_out_more": max(0, len(left_out) - LEFT_OUT_SHOWN),
    }


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
                    f"{quoted(api_key.name)} may now be used only from {len(networks)} "
                    f"network{'s' if len(networks) != 1 else ''}; calls from anywhere else "
                    "get 403 ip_not_allowed."
                )
            else:
                message = f"{quoted(api_key.name)} may be used from any network again."
            messages.success(request, message)
            if request.htmx:
                return render(request, f"{TEMPLATE}#networks", networks_context(api_key))
            return redirect(usage_url + "#networks")
    context = networks_context(api_key, form)
    if request.htmx:
        return render(request, f"{TEMPLATE}#networks", context, status=422)
    return render(request, TEMPLATE, context, status=422)
