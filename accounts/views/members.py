"""Settings → Members: the members, found by name or address, a page at a time; an
owner's invitations, role changes, removals and hand-over; leaving."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import (
    CURRENT_PROJECT_SESSION_KEY,
    project_member_may_leave,
    project_member_required,
    project_owner_required,
    verified_email_required,
)
from accounts.forms import InvitationForm, RoleForm
from accounts.http import ProjectRequest
from accounts.invitations import TooManyInvitations, invitation_revoke, invitation_send
from accounts.models import Invitation, Membership
from accounts.services import (
    MembershipError,
    membership_remove,
    membership_set_role,
    project_transfer_ownership,
)
from accounts.sudo import sudo_required
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.htmx import url_with_query, wants_fragment
from core.mail import inbox
from core.redact import holds_secret
from core.text_direction import text_isolated

INVITATIONS_PER_HOUR = 30
INVITATIONS_PER_EMAIL_PER_DAY = 5
# Members a page: a project may have MAX_MEMBERS_PER_PROJECT (500), each row with its
# forms; listed all at once, they made a page of a megabyte that took a second to render.
MEMBERS_PAGE_SIZE = 50
MEMBERS_TEMPLATE = "accounts/project_members.html"


def _member_search(text: str) -> str:
    """What a members search looks for: one line, at most 100 characters, and never a
    whole token (the page's own address never holds one, core.htmx.address_without_tokens; an
    action's form carries the search on, and its answer is written into an address)."""
    text = " ".join(text[:1000].replace("\x00", "").split())[:100]
    return "" if holds_secret("".join(text.split())) else text


def _members_query(q: str, page: int) -> str:
    """The members list's own query: what the pager's links and the actions' answers keep."""
    query = QueryDict(mutable=True)
    if q:
        query["q"] = q
    if page > 1:
        query["page"] = str(page)
    return query.urlencode()


def _members_listed(request: ProjectRequest, place: QueryDict) -> tuple[str, Page[Membership]]:
    """The search and the page of the members list that `place` (the page's query, or
    the fields an action's form carried from it) names, as the list is now."""
    q = _member_search(place.get("q", ""))
    members = request.project.memberships.select_related("user")
    if q:
        members = members.matching(q)
    members = members.yours_first(request.user)
    # get_page() turns anything that is not a page number ("²", "-1", 10**5000) into the
    # first or the last page: past the end (after a removal), the last.
    return q, Paginator(members, MEMBERS_PAGE_SIZE).get_page(place.get("page"))


def _members_context(request: ProjectRequest, form: InvitationForm) -> dict[str, object]:
    project = request.project
    # A refused invitation is answered with the page it was sent from.
    q, members_page = _members_listed(
        request, request.POST if request.method == "POST" else request.GET
    )
    invitations = (
        project.invitations.pending().newest_first().select_related("invited_by")
        if request.membership.is_owner
        else Invitation.objects.none()
    )
    return {
        "q": q,
        "members": members_page.object_list,
        "members_page": members_page,
        "pages": {
            "previous": "?" + _members_query(q, members_page.number - 1),
            "next": "?" + _members_query(q, members_page.number + 1),
        },
        "form": form,
        "invitations": invitations,
        "roles": Membership.Role.choices,
        # The last owner cannot leave; the button is not offered to them.
        "owners": project.memberships.owners().count(),
        "now": timezone.now(),
    }


def _invitation_refused(request: ProjectRequest, form: InvitationForm) -> HttpResponse:
    """The members page the form was sent from, with its errors beside its fields."""
    return render(request, MEMBERS_TEMPLATE, _members_context(request, form), status=422)


def _member_of(request: ProjectRequest, membership_id: int) -> Membership:
    """A membership of this project (another project's is 404)."""
    return get_object_or_404(
        Membership.objects.select_related("user", "project"),
        pk=membership_id,
        project=request.project,
    )


def _place_on_page(request: ProjectRequest, membership: Membership) -> int | None:
    """Where `membership` stands in the list (0: the first row of page 1), if it is on the
    page an action's form was sent from; read before the action changes the list."""
    _, members_page = _members_listed(request, request.POST)
    rows = [m.pk for m in members_page.object_list]
    if membership.pk not in rows:
        return None
    return members_page.start_index() - 1 + rows.index(membership.pk)


# The extra tag of a members action's message: where on the list its outcome is said.
_OUTCOME_TAG = "members-outcome:"


def _back_to_members(
    request: ProjectRequest,
    level: int,
    said: str,
    *,
    row: Membership | None = None,
    stood_at: int | None = None,
    invitations: bool = False,
) -> HttpResponse:
    """The members page an action's form was sent from, its search and page: an owner
    working through page 7 of a large project stays there. The page's number is read as
    the pager reads one, against the list as it is now, so a removal that emptied the
    last page shows the new last.

    And the action's outcome, `said`, where the owner is looking, not at the page's top
    (off screen, 40 rows up): just above `row` while it is on the page, else where the
    removed row stood (`stood_at`: above the row that took its place, untinted, or below
    the page's last), else under the invitations' heading. The message carries that place
    (_OUTCOME_TAG) for the page to put its one live region, #messages, there; the answer
    leads to it. Without a place on the page it is said at the top, as elsewhere."""
    q, members_page = _members_listed(request, request.POST)
    rows = [m.pk for m in members_page.object_list]
    at = ""
    if row is not None and row.pk in rows:
        at = f"above:{row.pk}"
    elif stood_at is not None and rows:
        on_page = max(stood_at - (members_page.start_index() - 1), 0)
        # Past this page's end when the removal emptied the last page: below the new last.
        at = f"before:{rows[on_page]}" if on_page < len(rows) else f"below:{rows[-1]}"
    elif invitations and request.membership.is_owner:
        at = "invitations"
    messages.add_message(request, level, said, extra_tags=f"{_OUTCOME_TAG}{at}" if at else "")
    url = url_with_query(
        reverse("accounts:project_members", kwargs={"slug": request.project.slug}),
        _members_query(q, members_page.number),
    )
    return HttpResponseRedirect(f"{url}#messages" if at else url)


def _outcome_place(request: ProjectRequest, shown: Iterable[Membership]) -> dict[str, object]:
    """Where on this page of the members list an action's outcome is said (see
    _back_to_members): the page's messages go {"outcome_above": pk} (the row acted on),
    "outcome_before" (where a removed row stood) or "outcome_below" a row shown, or
    "outcome_invitations"; nothing (the page's top) when that place is not on the page."""
    rows = {m.pk for m in shown}
    for message in messages.get_messages(request):
        place = message.extra_tags.removeprefix(_OUTCOME_TAG)
        if place == message.extra_tags:
            continue
        if place == "invitations" and request.membership.is_owner:
            return {"outcome_placed": True, "outcome_invitations": True}
        side, _, pk = place.partition(":")
        if side in ("above", "before", "below") and pk.isdigit() and int(pk) in rows:
            return {"outcome_placed": True, f"outcome_{side}": int(pk)}
    return {}


@require_GET
@project_member_required
def project_members(request: ProjectRequest) -> HttpResponse:
    """The members, 50 a page, found by name or address; the owner's invitations."""
    context = _members_context(request, InvitationForm(project=request.project))
    if wants_fragment(request) and request.htmx.target == "member-list":
        template = f"{MEMBERS_TEMPLATE}#member-list"
    else:
        template = MEMBERS_TEMPLATE
        context.update(_outcome_place(request, cast("Iterable[Membership]", context["members"])))
    response = render(request, template, context)
    # The same URL answers the page or its list: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@project_owner_required
@verified_email_required
@sudo_required
def project_invitation_send(request: ProjectRequest) -> HttpResponse:
    form = InvitationForm(request.POST, project=request.project)
    if form.is_valid() and not throttle_allows(
        f"member-add:{request.user.pk}", limit=INVITATIONS_PER_HOUR, window_seconds=3600
    ):
        form.add_error(None, "You sent many invitations in the last hour. Try again later.")
    if form.is_valid() and not throttle_allows(
        f"invite-to:{request.project.pk}:{inbox(form.cleaned_data['email'])}",
        limit=INVITATIONS_PER_EMAIL_PER_DAY,
        window_seconds=86400,
    ):
        # Nobody's inbox fills with this project's invitations: counted per inbox as mail
        # reaches it (core.mail.inbox), so `+tag` and other spellings of one address share
        # the count. Per project, so that a stranger's project cannot use it up.
        form.add_error("email", "This address was invited many times today. Try again tomorrow.")
    if not form.is_valid():
        return _invitation_refused(request, form)
    email = form.cleaned_data["email"]
    try:
        invitation_send(
            project=request.project,
            email=email,
            role=form.cleaned_data["role"],
            by=request.user,
            ip=client_ip(request),
        )
    except TooManyInvitations as full:  # the last place taken since the form's check
        form.add_error("email", str(full))
        return _invitation_refused(request, form)
    # The same words whether or not the email has an account (no enumeration).
    return _back_to_members(
        request,
        messages.SUCCESS,
        f"Invitation sent to {email}. They join the project once they accept; the link "
        "expires in 7 days.",
        invitations=True,
    )


@require_POST
@project_owner_required
@sudo_required
def project_invitation_revoke(request: ProjectRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(
        Invitation.objects.select_related("project"), pk=invitation_id, project=request.project
    )
    if invitation_revoke(invitation=invitation, by=request.user, ip=client_ip(request)):
        said = f"The invitation to {invitation.email} was withdrawn."
        return _back_to_members(request, messages.SUCCESS, said, invitations=True)
    # Ended since the page offered it: accepted (the person is in, whatever the owner
    # meant) or withdrawn by another owner. "Withdrawn" would be wrong for the first.
    invitation.refresh_from_db()
    if invitation.accepted_at is None:
        said = f"The invitation to {invitation.email} had already been withdrawn."
        return _back_to_members(request, messages.INFO, said, invitations=True)
    joined = request.project.memberships.filter(user=invitation.accepted_by).first()
    said = f"{invitation.email} accepted the invitation before it could be withdrawn"
    said += ": they are a member now. Remove them if they should not be." if joined else "."
    return _back_to_members(request, messages.WARNING, said, row=joined, invitations=True)


@require_POST
@project_owner_required
@sudo_required
def project_member_remove(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = _member_of(request, membership_id)
    stood_at = _place_on_page(request, membership)
    try:
        membership_remove(membership=membership, by=request.user, ip=client_ip(request))
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=membership)
    said = f"{membership.user.email} was removed from the project."
    if membership.user_id == request.user.pk:
        messages.success(request, said)
        return redirect("home")
    return _back_to_members(request, messages.SUCCESS, said, stood_at=stood_at)


@require_POST
@project_member_may_leave
def project_leave(request: ProjectRequest) -> HttpResponse:
    """Any member may leave, except the last owner; one without the second factor the
    project requires too."""
    try:
        membership_remove(membership=request.membership, by=request.user, ip=client_ip(request))
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=request.membership)
    request.session.pop(CURRENT_PROJECT_SESSION_KEY, None)
    messages.success(request, f"You left {text_isolated(request.project.name)}.")
    return redirect("home")


@require_POST
@project_owner_required
@sudo_required
def project_member_role(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = _member_of(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _back_to_members(request, messages.ERROR, "Choose Owner or Member.", row=membership)
    try:
        membership = membership_set_role(
            membership=membership,
            role=form.cleaned_data["role"],
            by=request.user,
            ip=client_ip(request),
        )
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=membership)
    said = f"{membership.user.email} is now {membership.get_role_display().lower()}."
    return _back_to_members(request, messages.SUCCESS, said, row=membership)


@require_POST
@project_owner_required
@sudo_required
def project_transfer(request: ProjectRequest, membership_id: int) -> HttpResponse:
    """Hand the project to another member: they become an owner, you a member."""
    to = _member_of(request, membership_id)
    try:
        project_transfer_ownership(
            project=request.project, to=to, by=request.membership, ip=client_ip(request)
        )
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=to)
    project = text_isolated(request.project.name)
    said = f"{to.user.email} is now an owner of {project}; you are a member."
    return _back_to_members(request, messages.SUCCESS, said, row=to)
