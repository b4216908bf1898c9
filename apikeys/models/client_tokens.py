"""Client tokens (`reminix_ct_`): ClientToken, minted by an API key or a PAT for a browser,
its public id and longest lifetime, and its reads."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Membership, Passkey, Project, TotpDevice, User
from accounts.two_factor import has_two_factor
from apikeys.models.api_keys import ApiKey
from apikeys.models.common import Token, TokenQuerySet, TokenStatus, token_json_checks
from apikeys.tokens import TokenKind
from core.token_shape import BASE62

CLIENT_TOKEN_ID_PATTERN = "ctok_[0-9A-Za-z]{20}"


def client_token_public_id() -> str:
    """The id a client token is known by in the API and the dashboard (not guessable)."""
    return "ctok_" + "".join(secrets.choice(BASE62) for _ in range(20))


# The longest a client token lives (the API asks for ttlSeconds of at most this, and
# client_token_create refuses more): a token minted earlier ended by then.
CLIENT_TOKEN_MAX_TTL = 86400


# Why a client token a PAT minted stopped with its person's place in the project.
MINTER_LEFT = "The person whose token minted this client token left the project."
# (Until they set one up, or the owners stop requiring it: then it works again.)
MINTER_WITHOUT_SECOND_FACTOR = (
    "The person whose token minted this client token has no second factor, which the "
    "project requires."
)


# Beside it, for tokens whose ids and mint times are not quite in the same order (two
# minted at once commit in either order).
_MINT_ORDER_SLACK = timedelta(hours=1)


class ClientTokenQuerySet(TokenQuerySet["ClientToken"]):
    """Reads of client tokens: a project's, a key's, and alive_since(), those alive at some
    point after a moment (the client tokens page's last 7 days) without walking all a
    project minted."""

    def for_project(self, project: Project) -> ClientTokenQuerySet:
        return self.filter(project=project)

    def minted_by(self, api_key: ApiKey) -> ClientTokenQuerySet:
        """Those that `api_key` minted."""
        return self.filter(api_key=api_key)

    def working_of_key(self, api_key: ApiKey, moment: datetime) -> ClientTokenQuerySet:
        """Those `api_key` minted that still work at `moment` as far as the key goes
        (ClientToken.end_reason_at): not expired or revoked, not revoked with all of the
        key's, minted with a secret of the key that still works, the key itself working.
        Read from the key's row in the same statement, not from `api_key` as loaded (a
        roll or a revoke-all since would not be in it). What a revocation of the key ends,
        counted for its audit event."""
        previous_works = Q(api_key__previous_expires_at__gt=moment)
        secret_works = (
            Q(minted_with_hint=F("api_key__hint"))
            | (Q(minted_with_hint=F("api_key__previous_hint")) & previous_works)
            # Minted before secrets were recorded: with the secret the key had then.
            | (
                Q(minted_with_hint="")
                & (
                    Q(api_key__rolled_at__isnull=True)
                    | Q(created_at__gt=F("api_key__rolled_at"))
                    | previous_works
                )
            )
        )
        return (
            self.minted_by(api_key)
            .filter(revoked_at__isnull=True, expires_at__gt=moment)
            .filter(Q(api_key__expires_at__isnull=True) | Q(api_key__expires_at__gt=moment))
            .filter(
                Q(api_key__client_tokens_revoked_through__isnull=True)
                | Q(pk__gt=F("api_key__client_tokens_revoked_through"))
            )
            .filter(secret_works)
        )

    def with_minters_standing(self) -> ClientTokenQuerySet:
        """Each with what ClientToken.end_reason_at asks of the person whose PAT minted it,
        read in the same statement: whether the membership it was minted in still holds, and
        whether they have a second factor (asked where the owners require one). Asked token
        by token, a page of fifty cost up to a hundred and fifty more statements."""
        user = OuterRef("personal_token__user_id")
        memberships = Membership.objects.filter(user_id=user, project_id=OuterRef("project_id"))
        return self.annotate(
            minter_membership_holds=Case(
                When(
                    minted_in__isnull=False,
                    then=Exists(memberships.filter(pk=OuterRef("minted_in"))),
                ),
                default=Exists(memberships.filter(created_at__lte=OuterRef("created_at"))),
                output_field=models.BooleanField(),
            ),
            minter_has_app=Exists(
                TotpDevice.objects.filter(user_id=user, confirmed_at__isnull=False)
            ),
            minter_has_passkey=Exists(Passkey.objects.filter(user_id=user)),
        )

    def alive_since(self, moment: datetime) -> ClientTokenQuerySet:
        """Those minted, or still alive, after `moment`. No token minted before `moment`
        less the longest lifetime is: the newest of those bounds their ids, so a walk of
        the project's tokens newest first (ctoken_project_newest) stops there instead of
        going through every token the project ever minted."""
        before = (
            self.filter(
                created_at__lte=moment - timedelta(seconds=CLIENT_TOKEN_MAX_TTL) - _MINT_ORDER_SLACK
            )
            .order_by("-created_at")  # one step of ctoken_project_time: any newest will do
            .values("pk")[:1]
        )
        return self.filter(Q(expires_at__gt=moment) | Q(created_at__gt=moment)).filter(
            pk__gt=Coalesce(Subquery(before), Value(0))
        )


class ClientToken(Token):
    """A short-lived token (`reminix_ct_…`) that a customer's backend mints for a browser.

    It reaches only the Client API, carries `context` (readable by the browser) and
    `server_context` (seen only by agents), and dies with the key or PAT that minted it.
    """

    kind = TokenKind.CLIENT_TOKEN
    noun = "client token"

    public_id = models.CharField(max_length=32, unique=True, default=client_token_public_id)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="client_tokens")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="client_tokens"
    )
    personal_token = models.ForeignKey(
        "PersonalAccessToken",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="client_tokens",
    )
    context = models.JSONField(default=dict)
    server_context = models.JSONField(default=dict)
    expires_at = models.DateTimeField()
    # The hint of the secret that minted it, its API key's or its PAT's ("" before keys
    # could be rolled, or, for a PAT, regenerated unless recorded): a client token dies
    # with the secret that minted it when its key is rolled or its PAT regenerated.
    minted_with_hint = models.CharField(max_length=40, blank=True)
    # The membership (its id) of the PAT's person in the project when a PAT minted it: it
    # dies with that membership, and a later one (the person removed, then added again)
    # does not bring it back. An id, not a foreign key: the membership's row is deleted on
    # removal. None for a key's, and for a PAT's from before it was recorded (then: a
    # membership that began before the token did).
    minted_in = models.BigIntegerField(null=True, blank=True)

    objects = ClientTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="ctoken_project_time"),
            models.Index(fields=["api_key", "-created_at"], name="ctoken_key_time"),
            # The client tokens page, newest first (apikeys/migrations/0029).
            models.Index(fields=["project", "-id"], name="ctoken_project_newest"),
        ]
        constraints = token_json_checks("ctoken", objects=("context", "server_context"))

    def __str__(self) -> str:
        return self.public_id

    def status_at(self, moment: datetime) -> TokenStatus:
        """Revoked with all its key's client tokens while it worked reads revoked, after
        its expiry too, as when that wrote to every token."""
        if self._revoked_with_its_key_while_it_worked() is not None:
            return TokenStatus.REVOKED
        return super().status_at(moment)

    def own_end_reason_at(self, moment: datetime, *, subject: str = "") -> str | None:
        """Its own expiry or revocation only: what the browser holding it may be told. A
        revocation of all its key had minted is its own: the browser is told when, as it
        was when that wrote to every token."""
        subject = subject or f"This {self.noun}"
        revoked_at = self._revoked_with_its_key_while_it_worked()
        reason = None if revoked_at is not None else super().end_reason_at(moment, subject=subject)
        if reason is None and (revoked_at := self.revoked_with_all_of_its_key_at) is not None:
            # Refused by its id whatever any clock reads: this instance's may run behind
            # the one that revoked them all, or the one that set its expiry.
            reason = f"{subject} was revoked on {revoked_at:%-d %b %Y, %H:%M} UTC."
        return reason

    @property
    def revoked_with_all_of_its_key_at(self) -> datetime | None:
        """When "Revoke all client tokens" of the key that minted it ended it; None if that
        did not (never done, or done before it was minted). Its id, not a time, says which
        were minted before (ApiKey.client_tokens_revoked_through)."""
        key = self.api_key
        if key is None or key.client_tokens_revoked_through is None:
            return None
        if self.pk is None or self.pk > key.client_tokens_revoked_through:
            return None
        return key.client_tokens_revoked_at or key.created_at

    def _revoked_with_its_key_while_it_worked(self) -> datetime | None:
        """revoked_with_all_of_its_key_at, unless it had expired or been revoked itself by
        then: what it is said to have ended by (never whether it ended: its id says that)."""
        revoked_at = self.revoked_with_all_of_its_key_at
        if revoked_at is None or self.expires_at <= revoked_at:
            return None
        if self.revoked_at is not None and self.revoked_at <= revoked_at:
            return None
        return revoked_at

    def revoke(self, *, by: User | None) -> bool:
        """As Token.revoke, and False for one revoked with all its key's: nothing written,
        nothing recorded (from the page, the API or a report of a leak), and the time its
        browser is told stays that of the revoke-all. False too for one past its expiry
        (a page left open for its hour still offers Revoke): it ended by itself, and it
        reads expired, not revoked by someone, on its page and in the audit log."""
        if self.revoked_at is None and self.revoked_with_all_of_its_key_at is not None:
            return False
        if self.expires_at <= timezone.now():
            return False
        return super().revoke(by=by)

    @property
    def ends_at(self) -> datetime:
        """When it stops working, as far as is known now: its own expiry, or the end of
        the rolled key's previous secret that minted it, if sooner (what the list shows,
        and GET /client/token tells the browser)."""
        key = self.api_key
        if key is None or key.previous_expires_at is None:
            return self.expires_at
        if self.minted_with_hint != key.previous_hint:
            return self.expires_at
        return min(self.expires_at, key.previous_expires_at)

    def end_reason_at(
        self, moment: datetime, *, subject: str = "", minter_is_member: bool | None = None
    ) -> str | None:
        """Its own expiry or revocation, or the end of the key or PAT that minted it, or
        of its minter's place in the project (membership, and for a PAT the project's
        lifetime policy): a client token dies with its parent.
        `minter_is_member`: already known (the API reads it with the token); else asked."""
        revoked_at = self._revoked_with_its_key_while_it_worked()
        reason = None if revoked_at is not None else super().end_reason_at(moment, subject=subject)
        if reason is None:
            # By its id, whatever any clock reads (own_end_reason_at).
            revoked_at = revoked_at or self.revoked_with_all_of_its_key_at
        if reason is None and revoked_at is not None:
            reason = (
                f"Revoked with all its key's client tokens on {revoked_at:%-d %b %Y, %H:%M} UTC."
            )
        if reason is None and self.api_key is not None:
            reason = self.api_key.end_reason_at(
                moment, subject="The API key that minted this client token"
            )
        if reason is None:
            reason = self._minting_secret_end_reason(moment)
        if reason is None and self.personal_token is not None:
            pat = self.personal_token
            reason = pat.end_reason_at(
                moment, subject="The personal access token that minted this client token"
            )
            if reason is None and minter_is_member is None:
                # Asked here as the API's statement reads it with the token (api/lookup.py):
                # the membership it was minted in, and the project's two-factor policy met.
                if not (pat.user.is_active and self._minted_in_membership_holds()):
                    reason = MINTER_LEFT
                elif self.project.require_two_factor and not self._minter_has_second_factor():
                    reason = MINTER_WITHOUT_SECOND_FACTOR
            elif reason is None and not minter_is_member:
                reason = MINTER_LEFT
            if reason is None and pat.outlives_policy_of(self.project):
                # The project refuses the PAT itself on each call (its lifetime policy).
                reason = (
                    "The personal access token that minted this client token lives longer "
                    f"than the project allows ({self.project.max_pat_lifetime_days} days)."
                )
        return reason

    def _minter_has_second_factor(self) -> bool:
        """has_two_factor of its PAT's person: as read with the token where it was
        (ClientTokenQuerySet.with_minters_standing), else asked now."""
        assert self.personal_token is not None
        if hasattr(self, "minter_has_app"):
            return bool(self.minter_has_app or getattr(self, "minter_has_passkey", False))
        return has_two_factor(self.personal_token.user)

    def _minted_in_membership_holds(self) -> bool:
        """The membership its PAT's person had when it was minted is still there (as the
        API's lookup asks, api/lookup.py): as read with the token where it was
        (ClientTokenQuerySet.with_minters_standing), else asked now."""
        assert self.personal_token is not None
        if hasattr(self, "minter_membership_holds"):
            return bool(self.minter_membership_holds)
        memberships = Membership.objects.filter(
            user_id=self.personal_token.user_id, project_id=self.project_id
        )
        if self.minted_in is not None:
            return memberships.filter(pk=self.minted_in).exists()
        return memberships.filter(created_at__lte=self.created_at).exists()

    def _minting_secret_end_reason(self, moment: datetime) -> str | None:
        """A client token dies with the secret that minted it: its key's current secret, or
        the one before while that still works; or its PAT's current secret. Checked on
        every call, and nothing else ends it: a roll or a regenerate writes nothing per
        client token (whoever held a leaked key or PAT could otherwise have minted so many
        that rolling it timed out). One minted before secrets were recorded (no hint) was
        minted with the secret its parent had then: one a later roll or regenerate ended."""
        minted_with = self.minted_with_hint
        if self.personal_token is not None:
            pat = self.personal_token
            if minted_with == pat.hint:
                return None
            if not minted_with and not (
                pat.regenerated_at and self.created_at <= pat.regenerated_at
            ):
                return None
            return "The personal access token that minted this client token was regenerated."
        key = self.api_key
        if key is None or minted_with == key.hint:
            return None
        if not minted_with:
            if not (key.rolled_at and self.created_at <= key.rolled_at):
                return None
            # Minted with the secret the first roll replaced: the previous one, or (rolled
            # twice since) an older one, kept to the latest overlap. Such tokens predate
            # rolling, and live a day at most.
            minted_with = key.previous_hint
        if minted_with == key.previous_hint and key.previous_secret_works_at(moment):
            return None
        return (
            "The API key that minted this client token was rolled, and the secret that "
            "minted it no longer works."
        )
