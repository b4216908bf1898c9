"""Preconditions for project pages: the signed-in user must be a member (or an owner).

A project the user is not a member of does not exist for them: 404, never 403, so that
guessing slugs tells nothing. A project whose owners require a second factor shows a
member without one only the page that asks them to set one up (403).

The services check again, under a lock, when they write (accounts.services: member_hold,
owner_hold): someone removed or demoted while their request was on its way gets the same
answer as their next request would, not a change that commits after their removal.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve

from accounts.http import AuthenticatedRequest, ProjectRequest
from accounts.middleware import first_that_fits
from accounts.models import Membership, User
from accounts.services import NOT_AN_OWNER, NoLongerAMember
from accounts.two_factor import has_two_factor

type ProjectView = Callable[..., HttpResponseBase]

CURRENT_PROJECT_SESSION_KEY = "current_project_id"


def login_required[V: Callable[..., HttpResponseBase]](view: V) -> V:
    """Django's login_required, whose sign-in comes back to the page asked for only when
    its address fits one (else to its path, else to where sign-in starts). Django's puts
    the whole address in `next` and, for a link whose query is past the 16,384 characters
    it redirects to, raised DisallowedRedirect from inside the view: a 400 instead of the
    sign-in page, and an ERROR with its traceback for each such request."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        back = first_that_fits(request.get_full_path(), request.path)
        return redirect_to_login(back) if back else redirect(settings.LOGIN_URL)

    return wrapper  # type: ignore[return-value]


def project_member_required(view: ProjectView) -> ProjectView:
    """Resolve the URL's `slug` to one of the user's projects, as `request.project`."""
    return _project_member(view, two_factor_policy=True)


def project_member_may_leave(view: ProjectView) -> ProjectView:
    """As project_member_required, but the owners' two-factor requirement does not stand in
    the way: it keeps a member without a second factor out of the project's pages, not in
    the project. The page that asks them for one offers to leave instead."""
    return _project_member(view, two_factor_policy=False)


def _project_member(view: ProjectView, *, two_factor_policy: bool) -> ProjectView:
    @login_required
    @wraps(view)
    def wrapper(request: ProjectRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
        membership = project_membership(user=request.user, slug=slug)
        if membership is None:
            raise Http404("No such project.")
        request.membership = membership
        policy = two_factor_policy and membership.project.require_two_factor
        if policy and not has_two_factor(request.user):
            # The owners' policy: without a second factor, only the page that says so. Not
            # the project's pages' frame either (request.project, which every page's tabs
            # and their count of open alerts are drawn from, is left unset).
            return render(
                request,
                "accounts/two_factor_required.html",
                {"required_by": membership.project},
                status=403,
            )
        request.project = membership.project
        if request.session.get(CURRENT_PROJECT_SESSION_KEY) != membership.project_id:
            request.session[CURRENT_PROJECT_SESSION_KEY] = membership.project_id
        try:
            return view(request, *args, **kwargs)
        except NoLongerAMember:
            raise Http404("No such project.") from None

    return wrapper


def project_membership(*, user: User, slug: str) -> Membership | None:
    """The user's membership of the project at `slug`, or None if they are no member."""
    return (
        Membership.objects.select_related("project")
        # A deleted project has no members; its rows stay, and no page opens on it.
        .filter(user=user, project__slug=slug, project__deleted_at__isnull=True)
        .first()
    )


def project_frame(request: AuthenticatedRequest, *, path: str) -> None:
    """Draw a page that stands in for the project page at `path` (the sudo prompt, served
    from its own address once answered wrongly) in that project's frame: its name in the
    header and its tabs, as project_member_required would. Only a project the person may
    open now; any other path, or theirs behind the owners' two-factor policy, is no
    project's page."""
    try:
        slug = resolve(path).kwargs.get("slug")
    except Resolver404:
        return
    if not isinstance(slug, str):
        return
    membership = project_membership(user=request.user, slug=slug)
    if membership is None:
        return
    if membership.project.require_two_factor and not has_two_factor(request.user):
        return
    request.membership = membership  # type: ignore[attr-defined]
    request.project = membership.project  # type: ignore[attr-defined]


def project_owner_required(view: ProjectView) -> ProjectView:
    """As project_member_required, and the member must be an owner (403 otherwise)."""

    @wraps(view)
    def owner_only(request: ProjectRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.membership.is_owner:
            raise PermissionDenied(NOT_AN_OWNER)
        # A service's own refusal (demoted while the request was on its way) is a
        # NotAnOwner too, which Django answers with the same 403 page.
        return view(request, *args, **kwargs)

    return project_member_required(owner_only)


def verified_email_required(view: ProjectView) -> ProjectView:
    """Minting credentials and inviting people wait for a confirmed email address: until
    then, a panel (in a key dialog) or a page says so and offers the link again."""

    @wraps(view)
    def wrapped(request: ProjectRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if not user.is_authenticated or user.email_verified:
            return view(request, *args, **kwargs)
        template = "accounts/verify_first.html"
        if request.htmx and request.htmx.target == "key-panel":
            return render(request, f"{template}#verify-panel", {})
        if request.htmx:
            response = render(request, f"{template}#verify-main", {})
            response["HX-Retarget"] = "#main"
            response["HX-Reswap"] = "innerHTML"
            return response
        return render(request, template, {}, status=403)

    return wrapped


def verified_email_required_to_change(view: ProjectView) -> ProjectView:
    """verified_email_required for a page that shows a form on GET and changes things on
    POST: only the change waits. Settings that decide whether anyone hears of a leak
    (alert rules, what a key found in public does, one's own alert emails) are among what
    someone who signed up first with another person's address would set for that person
    to inherit once a password reset hands the account back."""
    guarded = verified_email_required(view)

    @wraps(view)
    def wrapped(request: ProjectRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method in ("GET", "HEAD"):
            return view(request, *args, **kwargs)
        return guarded(request, *args, **kwargs)

    return wrapped
