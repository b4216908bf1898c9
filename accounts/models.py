"""Users, projects, their members, and the browser origins a project allows."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import identify_hasher
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from core.json_type import json_type_check
from core.mail import delivery_address
from core.validators import no_secret, single_line


def _check_hash(password_hash: str, password: str | None) -> None:
    """A password's hash is stored as given: one that no hasher made (a password passed
    as its hash by mistake) would be a password at rest in clear, and a password beside
    its hash would be dropped unseen."""
    if password is not None:
        raise ValueError("A user takes a password or its hash, not both.")
    try:
        identify_hasher(password_hash)
    except ValueError:
        raise ValueError("That is no password hash of a known hasher.") from None


class UserManager(BaseUserManager["User"]):
    """Creates users whose username is their email address."""

    use_in_migrations = True

    def create_user(
        self,
        email: str,
        password: str | None = None,
        *,
        password_hash: str | None = None,
        **extra: object,
    ) -> User:
        """A user whose address is kept in the one spelling of its mailbox
        (core.mail.delivery_address), whoever creates it. `password_hash`: the password
        hashed already (make_password), by a sign-up that hashed it on the request."""
        if not email:
            raise ValueError("An email address is required.")
        if password_hash is not None:
            _check_hash(password_hash, password)
        user = self.model(email=delivery_address(email), **extra)
        if password_hash is not None:
            user.password = password_hash
        else:
            user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_verified_at", timezone.now())
        return self.create_user(email, password, **extra)

    def with_address(self, address: str) -> models.QuerySet[User]:
        """The account whose address is `address` in any case: "has this address an
        account?" (sign-up, an address change, createproject), read through the
        user_email_upper index."""
        return self.filter(email__iexact=address)

    def active(self) -> models.QuerySet[User]:
        """The accounts that may sign in (`is_active`)."""
        return self.filter(is_active=True)

    def address_kept(self, typed: str) -> str:
        """The address an account that `typed` names is kept under, to find it by (signing
        in, a password reset, a command): the delivery address of `typed`, or `typed`
        lower-cased as it is if an account is kept so (made before addresses were kept in
        one spelling, and left as it was because another account has that spelling)."""
        email = typed.strip().lower()
        canonical = delivery_address(email)
        if canonical != email and self.filter(email=email).exists():
            return email
        return canonical


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address and a password."""

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True, validators=[single_line, no_secret])
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # When the address was confirmed by a link sent to it (accounts/email_verification.py);
    # until then a person can look but not mint credentials or invite anyone.
    email_verified_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        indexes = [
            # "Has this address an account, in any case?" (UserManager.with_address, and
            # an invitation's look for a member by address) reads UPPER(email): without
            # this index, every user's row.
            models.Index(Upper("email"), name="user_email_upper"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def change_identity(self) -> str:
        """How a change to this person's access is announced (core.invalidation)."""
        return f"user:{self.pk}"


class ProjectQuerySet(models.QuerySet["Project"]):
    """Reads of projects: for_user() fences every project page (and a PAT's reach) to the
    person's memberships; deleted() lets detection skip a deleted project's calls."""

    def for_user(self, user: User) -> ProjectQuerySet:
        """The projects the user is a member of: every project page starts here."""
        return self.filter(memberships__user=user)

    def deleted(self) -> ProjectQuerySet:
        """The projects their owners deleted (accounts.services.project_delete): their rows
        stay, but nobody sees them, so the jobs do no work for them."""
        return self.filter(deleted_at__isnull=False)


class Project(models.Model):
    """A customer's project: it owns agents and API keys, and has members."""

    name = models.CharField(max_length=80, validators=[single_line, no_secret])
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Lifetime policy, set by owners (None: no maximum). API keys made after it must
    # expire within key days of their creation; personal access tokens whose lifetime is
    # longer than PAT days are refused in this project (PATs reach many projects, so the
    # project holding the policy checks it on each call, as GitHub organisations do).
    max_key_lifetime_days = models.PositiveSmallIntegerField(null=True, blank=True)
    max_pat_lifetime_days = models.PositiveSmallIntegerField(null=True, blank=True)
    # Every member must have a second factor to use the project's pages (accounts/
    # decorators.py); the API keys they made keep working.
    require_two_factor = models.BooleanField(default=False)

    class LeakedKeyAction(models.TextChoices):
        REVOKE = "revoke", "Revoke it at once, and tell the owners"
        REPORT = "report", "Only tell the owners (raise a high alert)"

    # What happens to one of its API keys that GitHub's secret scanning finds in public.
    leaked_key_action = models.CharField(
        max_length=8, choices=LeakedKeyAction.choices, default=LeakedKeyAction.REVOKE
    )
    # Deleted by an owner (accounts.services.project_delete): its credentials revoked and
    # its members gone, so no page or token reaches it; its rows stay, for the usage log's
    # and the audit trail's retention, and its slug stays taken.
    deleted_at = models.DateTimeField(null=True, blank=True)
    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def change_identity(self) -> str:
        """How a change to this project is announced to the API's workers (core.invalidation)."""
        return f"project:{self.pk}"

    @staticmethod
    def lifetime_exceeds(
        days: int | None, created_at: datetime, expires_at: datetime | None
    ) -> bool:
        """Whether a token made at `created_at`, expiring at `expires_at` (None: never),
        lives longer than `days` (None: no maximum). A minute's grace for the time the
        form took."""
        if days is None:
            return False
        if expires_at is None:
            return True
        return expires_at - created_at > timedelta(days=days, minutes=1)

    @property
    def allowed_origins(self) -> list[str]:
        return [o.origin for o in self.origins.all()]


class AllowedOrigin(models.Model):
    """A browser origin ("https://app.example.com") allowed to call the Client API with the
    project's client tokens. A row each, so a CORS preflight is one indexed lookup."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="origins")
    origin = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "origin"], name="origin_unique_project")
        ]
        ordering = ["origin"]

    def __str__(self) -> str:
        return self.origin


def _caseless(text: str) -> str:
    # NFC first: "ë" typed as e and a combining diaeresis is the stored ë.
    return unicodedata.normalize("NFC", text).casefold()


class MembershipQuerySet(models.QuerySet["Membership"]):
    """Reads of memberships: a project's or a person's, its owners, the project the home page
    opens, and for the members page its search (matching(), folded the same on SQLite and
    PostgreSQL) and its order (yours_first())."""

    def matching(self, text: str) -> MembershipQuerySet:
        """Those whose name or address holds `text`, in any case.

        Compared here, not in SQL: SQLite's LIKE and UPPER() fold ASCII letters alone (its
        "öztürk" does not find Öztürk, PostgreSQL's does) and neither database folds ß to
        ss; casefold() does both, the same on each. A project's members are few: at most
        MAX_MEMBERS_PER_PROJECT (500), read as three short columns."""
        wanted = _caseless(text)
        found = [
            pk
            for pk, name, email in self.values_list("pk", "user__name", "user__email")
            if wanted in _caseless(name) or wanted in _caseless(email)
        ]
        return self.filter(pk__in=found)

    def for_project(self, project: Project) -> MembershipQuerySet:
        """The project's memberships."""
        return self.filter(project=project)

    def for_user(self, user: User) -> MembershipQuerySet:
        """The person's memberships, one for each project they are in."""
        return self.filter(user=user)

    def owners(self) -> MembershipQuerySet:
        """Those with the owner's role."""
        return self.filter(role=Membership.Role.OWNER)

    def current_or_oldest(self, project_id: int | None) -> Membership | None:
        """The one in project `project_id` if there is one here, else the one held longest
        (a person's own first project, never one someone else added them to later)."""
        return (
            self.filter(project_id=project_id).first() if project_id is not None else None
        ) or self.order_by("created_at", "id").first()

    def yours_first(self, user: User) -> MembershipQuerySet:
        """By address, `user`'s own membership first: on the members page, the row with
        their Leave button opens the first page, wherever their address sorts."""
        return self.alias(yours=models.Case(models.When(user=user, then=0), default=1)).order_by(
            "yours", "user__email", "id"
        )


class Membership(models.Model):
    """A user's role in a project."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user")
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER


INVITATION_LIFETIME = timedelta(days=7)


class InvitationQuerySet(models.QuerySet["Invitation"]):
    """Reads of invitations: pending() is what the members page lists and the per-project cap
    counts, and what a new invitation to the same address or a withdrawal ends."""

    def pending(self) -> InvitationQuerySet:
        """Neither accepted nor revoked (an expired one is still listed, as expired)."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)

    def newest_first(self) -> InvitationQuerySet:
        """The most recently sent first, as the members page lists them."""
        return self.order_by("-created_at")


class Invitation(models.Model):
    """An owner's invitation of an email address into a project, with a role.

    Only the keyed hash of the link's token is stored (accounts/invitations.py); the
    invitee accepts by following the link while signed in with the invited email. Nobody
    becomes a member without accepting, and inviting says nothing about whether the email
    has an account."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "email"], name="invitation_project_email")]

    def __str__(self) -> str:
        return f"{self.email} to {self.project} ({self.role})"

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and not self.is_expired()

    @property
    def inviter(self) -> str:
        """Who the invitation is from, as its mail and its link's page say: the name the
        inviter chose and, beside it, the address they sign in with (verified: only a
        verified account invites). The name alone is whatever they typed ("Acme IT
        Support"), shown to a stranger under our sender."""
        by = self.invited_by
        if by is None:
            return "A project owner"
        return f"{by.name} ({by.email})" if by.name else by.email


class SignedInSession(models.Model):
    """One browser session of a person: where and what it signed in from, when it was last
    seen. The session itself is Django's (django_session); this row lets its owner see it
    and end it from another browser."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signed_in_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} from {self.ip or 'an unknown address'}"


class PendingSecondStep(models.Model):
    """A browser session between a person's password and their second factor
    (accounts/sessions.py): counted per person, so that past a few waiting at once a new
    one ends the oldest. Each right password sent without a cookie begins one, and its
    session would otherwise be kept 14 days, as many as anyone with a password cared to
    send. The row goes when the step ends in a sign-in (or with its session)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    started_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"second step of {self.user} begun at {self.started_at:%Y-%m-%d %H:%M:%S}"


class TotpDevice(models.Model):
    """A person's authenticator app (RFC 6238, 30-second codes of 6 digits). The seed is
    kept encrypted under the server's TOKEN_HASH_KEY (accounts/two_factor.py), so a copy
    of the database alone cannot make codes. Unconfirmed until a first code is entered."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device"
    )
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The time step of the last code accepted: a code is good once, never replayed.
    last_step = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"authenticator of {self.user}"


class RecoveryCode(models.Model):
    """One of a person's 10 single-use recovery codes, kept as a keyed hash only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_once")
        ]

    def __str__(self) -> str:
        return f"recovery code of {self.user}"


class Passkey(models.Model):
    """A person's passkey (a WebAuthn credential, accounts/passkeys.py): a second factor
    after the password, and a sign-in of its own. Only the public key is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys"
    )
    # base64url, unpadded, as browsers send it (at most 1,023 bytes by the spec).
    credential_id = models.CharField(max_length=1400, unique=True)
    public_key = models.BinaryField()  # COSE_Key
    # The WebAuthn user handle given at registration: random, never the primary key.
    user_handle = models.BinaryField()
    # The authenticator's counter: one that goes backwards means a cloned authenticator.
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    name = models.CharField(max_length=60, validators=[single_line, no_secret])
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # As the browser's registration gave them (accounts/migrations/0024).
            json_type_check(
                field="transports", json_type="array", name="passkey_transports_is_array"
            )
        ]

    def __str__(self) -> str:
        return f"passkey {self.name!r} of {self.user}"


class UsedPasskeyChallenge(models.Model):
    """A challenge that a passkey's answer was accepted for (accounts/passkeys.py): the
    same challenge, and so a replayed answer, is refused while it is still young enough
    to be taken, on every worker. Written only for an answer whose signature checks, so
    asking for challenges, or answering them wrongly, stores nothing; clear_sessions
    removes the rows once their challenges have expired."""

    # SHA-256 of the challenge: one width whatever the size of the library's challenges.
    digest = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"passkey challenge used at {self.used_at:%Y-%m-%d %H:%M:%S}"
