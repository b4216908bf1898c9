"""Names kept before they were checked for a token (core.validators.no_secret) lose the
token on upgrade, as suspension reasons did (apikeys 0028): apikeys 0030, accounts 0019
and agents 0006, through core.stored_secrets, a batch at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from accounts.models import Passkey, Project, User
from agents.models import Agent
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.tokens import TokenKind, token_generate
from core.redact import holds_token
from core.stored_secrets import stored_secrets_cut, stored_secrets_cut_unique
from tests.migration_state import migrated_back, migrated_to_the_end

SECRET = "A1b2C3d4E5" * 3 + "Zz9Yy8"
PASTED = "reminix_sk_" + SECRET
FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "reminix_pat_" + SECRET)
HIDDEN = "reminix_ct_" + "\u200b".join(SECRET[n : n + 4] for n in range(0, len(SECRET), 4))
BEFORE = [
    ("apikeys", "0029_client_token_project_newest"),
    ("accounts", "0018_user_and_passkey_names_hold_no_token"),
    ("agents", "0005_execution_agent_index"),
]


@contextmanager
def before_the_cuts() -> Iterator[object]:
    """The models as they were before the migrations that cut tokens; the database is
    brought up to date again on leaving, whatever happened."""
    old = migrated_back(BEFORE)
    try:
        yield old
    finally:
        migrated_to_the_end()


@pytest.mark.django_db(transaction=True)
def test_tokens_kept_in_names_before_names_were_checked_are_cut_on_upgrade():
    with before_the_cuts() as old:
        user = old.get_model("accounts", "User").objects.create(
            email="ada@example.com", name=f"Ada {FULLWIDTH}"
        )
        plain_user = old.get_model("accounts", "User").objects.create(
            email="bob@example.com", name="Bob 👩\u200d💻"
        )
        project = old.get_model("accounts", "Project").objects.create(
            name=f"Prod {PASTED}", slug="prod"
        )
        old.get_model("accounts", "Passkey").objects.create(
            user=user, credential_id="c1", public_key=b"k", user_handle=b"h", name=HIDDEN
        )
        api_key = old.get_model("apikeys", "ApiKey")
        key = api_key.objects.create(
            project=project,
            name=f"CI {PASTED}",
            token_hash="1" * 64,
            hint="reminix_sk_abcd…wxyz",
            notes=f"stored in vault; was {HIDDEN}",
            suspended_reason=f"Leaked: {FULLWIDTH}",
        )
        hinted = api_key.objects.create(
            project=project,
            name="Same as reminix_sk_abcd…wxyz",
            token_hash="2" * 64,
            hint="reminix_sk_abcd…wxyz",
        )
        old.get_model("apikeys", "PersonalAccessToken").objects.create(
            user=user, name=f"laptop {PASTED}", token_hash="3" * 64, hint="reminix_pat_a…b"
        )
        old.get_model("agents", "Agent").objects.create(
            project=project, name="support", description=f"deploy with {HIDDEN}"
        )
    assert User.objects.get(email="ada@example.com").name == "Ada reminix_pat_[redacted]"
    assert User.objects.get(pk=plain_user.pk).name == "Bob 👩\u200d💻"
    assert Project.objects.get(slug="prod").name == "Prod reminix_sk_[redacted]"
    assert Passkey.objects.get().name == "reminix_ct_[redacted]"
    cut = ApiKey.objects.get(pk=key.pk)
    assert cut.name == "CI reminix_sk_[redacted]"
    assert cut.notes == "stored in vault; was reminix_ct_[redacted]"
    assert cut.suspended_reason == "Leaked: reminix_pat_[redacted]"
    assert ApiKey.objects.get(pk=hinted.pk).name == "Same as reminix_sk_abcd…wxyz"
    assert PersonalAccessToken.objects.get().name == "laptop reminix_sk_[redacted]"
    assert Agent.objects.get().description == "deploy with reminix_ct_[redacted]"


@pytest.mark.django_db(transaction=True)
def test_two_working_keys_whose_names_differ_only_by_the_secret_are_told_apart():
    """Once cut, “CI <one secret>” and “CI <another>” would be one name, which the unique
    index of working keys refuses: the later one is “… (2)”; an ended key's is not held."""
    with before_the_cuts() as old:
        project = old.get_model("accounts", "Project").objects.create(name="P", slug="p")
        api_key = old.get_model("apikeys", "ApiKey")
        names = [f"CI {PASTED}", f"ci {PASTED[:-1]}X", f"CI {PASTED[:-2]}QQ"]
        keys = [
            api_key.objects.create(
                project=project, name=name, token_hash=f"{n:064d}", hint="reminix_sk_a…b"
            ).pk
            for n, name in enumerate(names)
        ]
        long = api_key.objects.create(
            project=project,
            name="x" * 60 + " reminix_sk_[redacted]",
            token_hash="9" * 64,
            hint="reminix_sk_a…b",
        )
        longer = api_key.objects.create(
            project=project,
            name="x" * 60 + f" {PASTED[:30]}",
            token_hash="8" * 64,
            hint="reminix_sk_a…b",
        )
    assert [ApiKey.objects.get(pk=pk).name for pk in keys] == [
        "CI reminix_sk_[redacted]",
        "ci reminix_sk_[redacted] (2)",
        "CI reminix_sk_[redacted] (3)",
    ]
    assert ApiKey.objects.get(pk=long.pk).name == "x" * 60 + " reminix_sk_[redacted]"
    assert ApiKey.objects.get(pk=longer.pk).name == "x" * 60 + " reminix_sk_[redacted] (2)"


@pytest.mark.django_db
def test_every_row_is_read_across_batches_and_only_those_holding_a_token_change(project):
    Agent.objects.bulk_create(
        Agent(project=project, name=f"a{n}", description=f"{n} {PASTED}" if n % 3 else f"{n}")
        for n in range(11)
    )
    assert stored_secrets_cut(Agent, "description", using="default", batch=2) == 7
    assert not Agent.objects.filter(description__contains=SECRET).exists()
    assert Agent.objects.filter(description__endswith=" reminix_sk_[redacted]").count() == 7
    assert stored_secrets_cut(Agent, "description", using="default", batch=2) == 0


@pytest.mark.django_db
def test_a_name_changed_since_its_batch_was_read_is_left_as_the_change_made_it(
    project, monkeypatch
):
    """A deploy migrates while the dashboard runs: a rename between the read and the cut
    was checked when it was made, and is not overwritten by the cut of the old name."""
    from core import stored_secrets

    agent = Agent.objects.create(project=project, name="a", description=f"was {PASTED}")
    read = stored_secrets.rows_in_batches

    def renamed_meanwhile(*args, **kwargs):
        for rows in read(*args, **kwargs):
            Agent.objects.filter(pk=agent.pk).update(description="renamed")
            yield rows

    monkeypatch.setattr(stored_secrets, "rows_in_batches", renamed_meanwhile)
    assert stored_secrets_cut(Agent, "description", using="default") == 0
    assert stored_secrets_cut_unique(ApiKey, "name", using="default") == 0
    agent.refresh_from_db()
    assert agent.description == "renamed"


# Reads as "reminix_sk_" and 12 letters (each ligature is three), so it is cut; written
# so, it is 15 characters, and "reminix_sk_[redacted]" is 21.
LIGATURES = "reminix_sk_" + "\ufb03" * 4


@pytest.mark.django_db(transaction=True)
def test_a_cut_that_reads_longer_than_the_token_still_fits_its_column():
    """A token written in characters that each read as several (a PDF's ﬃ ligature) is
    shorter than its cut: at a column's length, the cut would not fit, PostgreSQL would
    refuse it and the upgrade would stop there. It is shortened to fit, still cut."""
    with before_the_cuts() as old:
        user = old.get_model("accounts", "User").objects.create(email="ada@example.com", name="Ada")
        project = old.get_model("accounts", "Project").objects.create(name="P", slug="p")
        key = old.get_model("apikeys", "ApiKey").objects.create(
            project=project,
            name="k" * 85 + LIGATURES,
            token_hash="1" * 64,
            hint="reminix_sk_a…b",
            notes="n" * 485 + LIGATURES,
        )
        pat = old.get_model("apikeys", "PersonalAccessToken").objects.create(
            user=user, name="p" * 85 + LIGATURES, token_hash="2" * 64, hint="reminix_pat_a…b"
        )
    cut_key = ApiKey.objects.get(pk=key.pk)
    cut_pat = PersonalAccessToken.objects.get(pk=pat.pk)
    for text, length in ((cut_key.name, 100), (cut_key.notes, 500), (cut_pat.name, 100)):
        assert len(text) <= length
        assert "\ufb03" not in text
        assert text.endswith("…")
    assert cut_key.name.startswith("k" * 85 + "reminix_sk_")


def _disguises() -> tuple[str, str, str]:
    """Three fresh tokens: one's 36 characters without its prefix, one with a space every
    four characters (a terminal's copy), one split by a no-break space after its prefix."""
    sk, pat, ct = (
        str(token_generate(kind))
        for kind in (TokenKind.API_KEY, TokenKind.PERSONAL_ACCESS_TOKEN, TokenKind.CLIENT_TOKEN)
    )
    spaced = " ".join(pat[n : n + 4] for n in range(0, len(pat), 4))
    return sk.removeprefix("reminix_sk_"), spaced, ct.replace("_", "_\u00a0", 2)


BEFORE_DISGUISES = [
    ("apikeys", "0031_last_refused_ip"),
    ("accounts", "0022_forget_axes_access_log"),
    ("agents", "0007_execution_created_at_index"),
]


@pytest.mark.django_db(transaction=True)
def test_tokens_kept_spaced_or_without_their_prefix_are_cut_on_upgrade():
    """The checks came to refuse a token with spaces inside it and a token's 36 characters
    without their prefix (core.redact.holds_token) after names held whole tokens only:
    apikeys 0032, accounts 0023 and agents 0008 cut what the new checks find. Words after
    a bare prefix, in the field made for writing about a leak, stay."""
    rest, spaced, split = _disguises()
    words = "Leaked: the reminix_sk_ key was pasted in our Slack channel"
    old = migrated_back(BEFORE_DISGUISES)
    try:
        user = old.get_model("accounts", "User").objects.create(
            email="ada@example.com", name=f"Ada {rest}"
        )
        project = old.get_model("accounts", "Project").objects.create(
            name=f"Prod {spaced}", slug="prod"
        )
        old.get_model("accounts", "Passkey").objects.create(
            user=user, credential_id="c1", public_key=b"k", user_handle=b"h", name=split
        )
        api_key = old.get_model("apikeys", "ApiKey")
        keys = [
            api_key.objects.create(
                project=project,
                name=name,
                token_hash=f"{n:064d}",
                hint="reminix_sk_a…b",
                notes=f"vault:{rest}",
                suspended_reason=words if n else f"Leaked: {spaced}",
            ).pk
            for n, name in enumerate([f"CI {rest}", f"CI {_disguises()[0]}"])
        ]
        old.get_model("apikeys", "PersonalAccessToken").objects.create(
            user=user, name=f"laptop {split}", token_hash="9" * 64, hint="reminix_pat_a…b"
        )
        old.get_model("agents", "Agent").objects.create(
            project=project, name="support", description=f"deploy with {rest}."
        )
    finally:
        migrated_to_the_end()
    assert User.objects.get(pk=user.pk).name == "Ada [redacted]"
    assert Project.objects.get(slug="prod").name == "Prod remi nix_ pat_[redacted]"
    assert Passkey.objects.get().name == "reminix_ ct_[redacted]"
    first, second = (ApiKey.objects.get(pk=pk) for pk in keys)
    assert (first.name, second.name) == ("CI [redacted]", "CI [redacted] (2)")
    assert first.notes == second.notes == "vault:[redacted]"
    assert first.suspended_reason == "Leaked: remi nix_ pat_[redacted]"
    assert second.suspended_reason == words
    assert PersonalAccessToken.objects.get().name == "laptop reminix_ ct_[redacted]"
    assert Agent.objects.get().description == "deploy with [redacted]."
    for text in (first.name, first.notes, first.suspended_reason, Project.objects.get().name):
        assert not holds_token(text)
