import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.html import escape

from accounts.models import Membership, Project
from accounts.services.projects import RESERVED_SLUGS
from audit.models import AuditEvent

# A value each path converter takes (the client-token id has a shape of its own).
SAMPLE_VALUES: dict[str, object] = {"int": 1, "ctok": "ctok_" + "A" * 20}


def project_url_names() -> list[str]:
    """Every named URL that takes a project slug, so a new page cannot skip the check."""
    names = []

    def walk(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and "<slug:slug>" in str(p.pattern) and p.name:
                name = f"{namespace}:{p.name}" if namespace else p.name
                names.append(name)
                OTHER_PARAMS[name] = {
                    param: SAMPLE_VALUES.get(converter, "x1")
                    for converter, param in re.findall(r"<(\w+):(\w+)>", str(p.pattern))
                    if param != "slug"
                }

    walk(get_resolver().url_patterns)
    return names


OTHER_PARAMS: dict[str, dict[str, object]] = {}


def normalised(html: str) -> str:
    """The page without what changes on every response: CSRF tokens and CSP nonces."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'"x-csrftoken": "[^"]+"', "", html)
    return re.sub(r'nonce="[^"]+"', "", html)


def url_for(name: str, slug: str) -> str:
    """The URL with the other project's slug; ids in it are 1 (tests/apikeys check real ids)."""
    return reverse(name, kwargs={"slug": slug, **OTHER_PARAMS[name]})


def test_there_are_project_urls_to_check():
    assert len(project_url_names()) >= 6


@pytest.mark.parametrize("name", project_url_names())
def test_a_member_of_one_project_gets_404_on_every_url_of_another(client, make_user, name):
    stranger = make_user(email="stranger@example.com")
    owner = make_user(email="owner@example.com")
    their_project = Project.objects.for_user(owner).get()
    client.force_login(stranger)
    url = url_for(name, their_project.slug)
    statuses = []
    for method in (client.get, client.post):
        response = method(url)
        statuses.append(response.status_code)
        assert their_project.name not in response.content.decode()
    # 405 for the method a URL does not take; the one it takes must be refused with 404.
    assert set(statuses) <= {404, 405} and 404 in statuses, (url, statuses)


def test_creating_a_project_makes_the_creator_its_owner(signed_in, user):
    response = signed_in.post(reverse("accounts:project_create"), {"name": "Billing bot"})
    project = Project.objects.get(name="Billing bot")
    assert response["Location"] == reverse("overview:project_overview", args=[project.slug])
    assert Membership.objects.get(project=project, user=user).is_owner


@pytest.mark.parametrize("name", ["New", "new", "NEW!"])
def test_a_project_named_like_a_page_under_projects_opens_as_itself(signed_in, name):
    """/projects/new/ is the page that creates a project: a project whose slug was "new"
    was sent there from its creation, the home page and the project switcher, and its
    overview could never be opened."""
    response = signed_in.post(reverse("accounts:project_create"), {"name": name}, follow=True)
    project = Project.objects.get(name=name)
    assert response.resolver_match.url_name == "project_overview"
    assert response.resolver_match.kwargs["slug"] == project.slug


def test_no_project_slug_is_a_page_of_its_own_under_projects():
    """Each word a URL puts where a project's slug goes (projects/new/) is one that no
    project's slug may be, so a new page there cannot hide a project's."""
    words = set()

    def walk(patterns, prefix=""):
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif route.startswith("projects/") and not route.startswith("projects/<"):
                words.add(route.removeprefix("projects/").partition("/")[0])

    walk(get_resolver().url_patterns)
    assert "new" in words
    assert words <= RESERVED_SLUGS


def test_a_blank_project_name_is_refused_beside_the_field(signed_in):
    response = signed_in.post(reverse("accounts:project_create"), {"name": "   "})
    assert response.status_code == 200
    assert 'id="id_name_error"' in response.content.decode()


def test_an_owner_renames_the_project_and_the_slug_stays(signed_in, project):
    slug = project.slug
    url = reverse("accounts:project_settings", args=[slug])
    assert signed_in.post(url, {"name": "Renamed"}).status_code == 302
    project.refresh_from_db()
    assert (project.name, project.slug) == ("Renamed", slug)
    assert AuditEvent.objects.filter(action="project.renamed", project=project).exists()


def test_a_plain_member_cannot_rename_the_project(client, project, make_user, user):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member, role=Membership.Role.MEMBER)
    client.force_login(member)
    client.post(reverse("accounts:project_settings", args=[project.slug]), {"name": "Mine"})
    project.refresh_from_db()
    assert project.name != "Mine"


def test_visiting_a_project_makes_it_the_current_one(signed_in, user, make_project):
    second = make_project(owner=user, name="Second")
    signed_in.get(reverse("overview:project_overview", args=[second.slug]))
    assert signed_in.get(reverse("home"))["Location"] == reverse(
        "overview:project_overview", args=[second.slug]
    )


def test_the_project_switcher_lists_only_my_projects(signed_in, user, project, make_user):
    make_user(email="other@example.com", name="Zed")
    html = signed_in.get(reverse("overview:project_overview", args=[project.slug])).content
    assert escape(project.name).encode() in html
    assert escape("Zed's project").encode() not in html


def test_the_last_owner_cannot_be_removed(signed_in, project, user):
    own = Membership.objects.get(project=project, user=user)
    response = signed_in.post(
        reverse("accounts:project_member_remove", args=[project.slug, own.pk]), follow=True
    )
    assert Membership.objects.filter(pk=own.pk).exists()
    assert "at least one owner" in response.content.decode()


def test_an_owner_removes_a_member_and_their_access_ends(client, signed_in, project, make_user):
    member = make_user(email="member@example.com")
    membership = Membership.objects.create(project=project, user=member)
    signed_in.post(reverse("accounts:project_member_remove", args=[project.slug, membership.pk]))
    assert not Membership.objects.filter(pk=membership.pk).exists()
    client.force_login(member)
    assert client.get(reverse("overview:project_overview", args=[project.slug])).status_code == 404


def test_a_membership_id_of_another_project_is_404(signed_in, project, make_user):
    stranger = make_user(email="stranger@example.com")
    foreign = Membership.objects.get(user=stranger)
    response = signed_in.post(
        reverse("accounts:project_member_remove", args=[project.slug, foreign.pk])
    )
    assert response.status_code == 404
    assert Membership.objects.filter(pk=foreign.pk).exists()


def test_an_owner_sets_the_allowed_browser_origins_normalised(signed_in, project):
    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]),
        {"origins": "https://App.Example.com/\n\nhttp://localhost:3000\nhttps://app.example.com"},
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.allowed_origins == ["http://localhost:3000", "https://app.example.com"]
    assert AuditEvent.objects.filter(action="project.origins_changed", project=project).exists()


def test_saving_the_origins_as_they_were_records_no_change(signed_in, project):
    """Saving the list unchanged (the form submitted as it stood, or retyped in another
    order or case) wrote "origins changed" into the audit log, from a list to the same
    list, as the key and two-factor policies never do."""
    url = reverse("accounts:project_origins", args=[project.slug])
    signed_in.post(url, {"origins": "https://app.example.com\nhttp://localhost:3000"})

    response = signed_in.post(
        url, {"origins": "http://localhost:3000\nhttps://App.Example.com/"}, follow=True
    )

    assert "The allowed browser origins are as they were." in response.content.decode()
    assert AuditEvent.objects.filter(action="project.origins_changed").count() == 1


@pytest.mark.parametrize(
    "bad",
    [
        "app.example.com",
        "https://app.example.com/path",
        "https://*.example.com",
        "ftp://x.io",
        "http://[::1",
        "https://x.io:99999",
    ],
)
def test_a_value_that_is_not_an_origin_is_refused_beside_the_field(signed_in, project, bad):
    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]), {"origins": bad}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="id_origins_error"' in html
    assert "is not an origin" in html
    project.refresh_from_db()
    assert project.allowed_origins == []


def test_a_plain_member_cannot_change_origins(client, project, make_user):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    response = client.post(
        reverse("accounts:project_origins", args=[project.slug]), {"origins": "https://evil.io"}
    )
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.allowed_origins == []


def test_every_bad_origin_line_is_named_not_only_the_first(signed_in, project):
    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]),
        {"origins": "https://ok.example.com\napp.example.com\n\nftp://x.io"},
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Line 2, “app.example.com”" in html and "Line 4, “ftp://x.io”" in html


def test_a_refused_line_cannot_turn_the_rest_of_its_error_around(signed_in, project):
    """The error repeats the line. One holding a right-to-left override reversed the rest
    of the message after it ("…dna tsoh ,emehcs etirW .nigiro na ton si"): the line is
    repeated isolated (FSI … PDI), as every other customer text the pages repeat."""
    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]),
        {"origins": "\u202ehttps://evil.example"},
    )
    assert response.status_code == 422
    assert "Line 1, “\u2068\u202ehttps://evil.example\u2069”, is not an origin." in (
        response.content.decode()
    )


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://localhost:80/", "http://localhost"),
        # An address in any form a browser reads is sent in its one form (what Chromium
        # puts in Origin for each of these): as typed, it matched no Origin header.
        ("http://127.1:3000", "http://127.0.0.1:3000"),
        ("http://0x7f.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://2130706433:3000", "http://127.0.0.1:3000"),
        ("http://[0:0::1]:3000", "http://[::1]:3000"),
        ("http://[::FFFF:127.0.0.1]:3000", "http://[::ffff:7f00:1]:3000"),
        ("http://[2001:DB8:0:0:1:0:0:1]", "http://[2001:db8::1:0:0:1]"),
        # Ideographic and fullwidth dots part labels, for a browser as for the codec.
        ("http://faß\u3002example", "http://xn--fa-hia.example"),
        ("http://faß\uff0eexample", "http://xn--fa-hia.example"),
    ],
)
def test_origins_are_stored_as_a_browser_sends_them(signed_in, project, typed, stored):
    signed_in.post(reverse("accounts:project_origins", args=[project.slug]), {"origins": typed})
    project.refresh_from_db()
    assert project.allowed_origins == [stored]


@pytest.mark.parametrize(
    "bad",
    [
        "https://" + "a" * 250 + ".com",  # 262 characters: PostgreSQL refused it, a 500
        "https://exa mple.com",  # no browser sends a space in Origin
        "https://a\u200db.example",  # IDNA 2003 dropped the joiner: ab.example, another site
        "http://1.2.3.999",  # a host ending in a number is an address to a browser, or nothing
        "http://[fe80::1%25eth0]",  # a zone is the machine's own, never in an Origin
        # A browser reads a backslash as the path's slash, decodes an escape in a host,
        # and has no host with ^, | or angle brackets: each was saved, and matched nothing.
        "https://app.example.com\\evil.com",
        "https://ex%61mple.com",
        "https://a^b.example",
        "https://a|b.example",
        "https://a<b>.example",
        # A browser's Origin holds no user or password; "user@" was refused, an empty user
        # with a password was saved as the host alone, an origin the owner never typed.
        "https://:pw@app.example.com",
        "https://@app.example.com",
    ],
)
def test_an_origin_no_browser_could_send_is_refused_beside_the_field(signed_in, project, bad):
    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]), {"origins": bad}
    )
    assert response.status_code == 422
    assert "is not an origin" in response.content.decode()
    project.refresh_from_db()
    assert project.allowed_origins == []


def test_port_0_is_kept_not_read_as_the_default_port(signed_in, project):
    """A browser keeps port 0 in Origin (https://app.example.com:0). Read as "no port", it
    was saved as https://app.example.com: an origin the owner never typed was let in."""
    signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]),
        {"origins": "https://app.example.com:0"},
    )
    project.refresh_from_db()
    assert project.allowed_origins == ["https://app.example.com:0"]


def test_a_unicode_host_is_stored_in_the_ascii_form_browsers_send(signed_in, project):
    """Stored as typed, "https://bücher.example" matched no Origin header a browser sends
    (https://xn--bcher-kva.example): the Client API stayed closed to the site."""
    signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]),
        {"origins": "https://Bücher.example"},
    )
    project.refresh_from_db()
    assert project.allowed_origins == ["https://xn--bcher-kva.example"]
    preflight = Client().options(
        "/client/agents/my-agent/invoke",
        headers={
            "Origin": "https://xn--bcher-kva.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert preflight.status_code == 204


@pytest.mark.parametrize("bad", ["https://a.com:99999", "https://a.com:abc"])
def test_an_impossible_port_is_an_error_beside_the_field(signed_in, project, bad):
    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]), {"origins": bad}
    )
    assert response.status_code == 422
    assert 'id="id_origins_error"' in response.content.decode()


def test_a_slug_taken_between_its_check_and_the_insert_gets_a_suffix_not_a_500(user, monkeypatch):
    """Two sign-ups of "Ada" at once both find "adas-project" free; the second to insert
    gets a suffixed slug, as for any taken one."""
    from accounts import services

    first = services.project_create(name="Ada's project", owner=user)
    monkeypatch.setattr(services.projects, "_unique_slug", lambda name: first.slug)  # checked: free
    second = services.project_create(name="Ada's project", owner=user)
    assert second.slug != first.slug and second.slug.startswith(f"{first.slug}-")
    assert len(second.slug) <= 64


def test_a_long_list_of_origins_refused_as_too_many_is_shown_back_to_trim(signed_in, project):
    """Past 50 origins the list is refused; what was pasted stays in the field to cut down,
    even past 10,000 characters (50 origins of the column's 255 fit in 12,800)."""
    typed = "\n".join(f"https://preview-{n:04d}.staging.example-company.com" for n in range(220))
    assert 10_000 < len(typed) < 50 * 256

    response = signed_in.post(
        reverse("accounts:project_origins", args=[project.slug]), {"origins": typed}
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert "At most 50 origins." in html
    assert "https://preview-0219.staging.example-company.com</textarea>" in html
