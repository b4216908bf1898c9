"""Forms for sign-up, sign-in, projects and members. Validation lives here, not in views."""

from __future__ import annotations

import ipaddress
import re
import socket
from encodings.idna import nameprep
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth.forms import (
    AuthenticationForm,
    BaseUserCreationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
)
from django.utils.html import format_html

from accounts.invitations import (
    TOO_MANY_INVITATIONS,
    TOO_MANY_MEMBERS,
    invitations_full,
    members_full,
)
from accounts.models import AllowedOrigin, Membership, Project, User
from accounts.services import TOO_MANY_PROJECTS, projects_full
from core.counters import throttle_allows
from core.forms import NoTokenCharField
from core.mail import delivery_address
from core.text_direction import html_isolated, quoted, text_isolated
from core.validators import mailable_address

EMAIL_MAX_LENGTH = 254


class AccountEmailField(forms.EmailField):
    """An address an account or an invitation keeps: one mail can be sent to
    (core.validators.mailable_address), in the one spelling of its mailbox
    (core.mail.delivery_address). `x@EXAMPLE.com` and `x@ｅｘａｍｐｌｅ.com` are
    x@example.com, as mail reaches them, so one mailbox cannot be two accounts."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["max_length"] = EMAIL_MAX_LENGTH
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        email = str(super().clean(value) or "")
        if not email:
            return email
        mailable_address(email)
        canonical = delivery_address(email)
        # IDNA writes some letters as two (ß as ss): past the column, PostgreSQL would
        # refuse the row with a 500.
        if len(canonical) > EMAIL_MAX_LENGTH:
            raise forms.ValidationError(
                f"Enter an address of at most {EMAIL_MAX_LENGTH} characters.",
                code="max_length",
            )
        return canonical


class SignUpForm(BaseUserCreationForm):
    """A new account: name, email and a password typed twice. Whether the address has an
    account is never said here (the sign-up view answers both the same and tells that
    account's owner instead)."""

    class Meta:
        model = User
        fields = ("name", "email")
        # The name is shown to the person's fellow members and in invitation mails: a
        # token pasted into it is refused (the model's no_secret) and not shown back.
        field_classes = {"email": AccountEmailField, "name": NoTokenCharField}
        widgets = {
            "name": forms.TextInput(attrs={"autocomplete": "name"}),
            "email": forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
        }
        labels = {"name": "Your name"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["name"].required = False
        self.fields["name"].help_text = "Optional. Shown to the other members of your projects."

    def validate_unique(self) -> None:
        """Not here: "a user with this email exists" would tell anyone who asks."""

    def validate_password_for_user(self, user: Any, password_field_name: str = "") -> None:
        # "Too short" belongs under the password, not under its confirmation.
        super().validate_password_for_user(user, "password1")  # type: ignore[misc]


class NewPasswordForm(SetPasswordForm):
    """A new password after a reset link; its rules are reported beside the password."""

    def validate_password_for_user(self, user: Any, password_field_name: str = "") -> None:
        super().validate_password_for_user(user, "new_password1")


# Checks of the current password on the change form, per person: as many as the sudo
# prompt allows (accounts/sudo.py), so a borrowed session cannot guess it here instead.
PASSWORD_CHECKS_PER_15_MINUTES = 10


class ChangePasswordForm(PasswordChangeForm):
    """A changed password; its rules are reported beside the new password."""

    def clean_old_password(self) -> str:
        # Counted before the check, right or wrong: parallel guesses all count.
        if not throttle_allows(
            f"password-change:{self.user.pk}",
            limit=PASSWORD_CHECKS_PER_15_MINUTES,
            window_seconds=900,
        ):
            raise forms.ValidationError(
                "Too many tries. Wait 15 minutes, then try again.", code="throttled"
            )
        return str(super().clean_old_password())

    def validate_password_for_user(self, user: Any, password_field_name: str = "") -> None:
        super().validate_password_for_user(user, "new_password1")


class SignInForm(AuthenticationForm):
    """Email and password. One message for every failure, so it never says which was wrong."""

    error_messages = {
        "invalid_login": "That email and password don't match an account. Check both and "
        "try again.",
        "inactive": "That email and password don't match an account. Check both and try again.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget = forms.EmailInput(
            attrs={"autocomplete": "username", "autofocus": True}
        )

    def clean_username(self) -> str:
        # AuthenticationForm sets the field's max_length after building it, so no validator
        # enforces it: a 5,000-character "email" reached django-axes' 255-character column,
        # and a body of a million one-letter labels would hold IDNA (below) for seconds.
        typed = str(self.cleaned_data["username"]).strip()
        # Found in any spelling of its mailbox, as the account keeps it (AccountEmailField).
        email = User.objects.address_kept(typed) if len(typed) <= EMAIL_MAX_LENGTH else ""
        if not email or len(email) > EMAIL_MAX_LENGTH:
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login")
        return email


class ResetRequestForm(PasswordResetForm):
    """The address to send a password reset link to: found in any spelling of its mailbox
    (`"x"@example.com`, a domain in other letters), as signing in finds it. Its link is
    written and sent after the answer (PasswordResetView, core.after_answer)."""

    def clean_email(self) -> str:
        return User.objects.address_kept(str(self.cleaned_data["email"]))


class ProjectForm(forms.ModelForm):
    """A project's name. The slug is chosen once, at creation, so URLs stay stable."""

    class Meta:
        model = Project
        fields = ("name",)
        field_classes = {"name": NoTokenCharField}
        labels = {"name": "Project name"}
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "off"})}

    def __init__(self, *args: Any, owner: User | None = None, **kwargs: Any) -> None:
        """`owner`: the person a new project would be made for (None: a rename)."""
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the project a name.", code="required")
        if self.owner is not None and projects_full(self.owner):
            raise forms.ValidationError(TOO_MANY_PROJECTS, code="too_many")
        return name


class TypedConfirmationForm(forms.Form):
    """What a deletion that cannot be undone asks for: the name of what goes, typed again,
    so that nothing is deleted by a click meant for something else (as GitHub asks for a
    repository's name). `what` names it in the messages; `expected` is the text to type."""

    confirm = forms.CharField(
        max_length=254,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}
        ),
    )

    def __init__(
        self, *args: Any, what: str, expected: str, quote: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.what, self.expected, self.quote = what, expected, quote
        # HTML, the name in a <bdi>: a direction override in it reorders nothing after it.
        # The quotes (a name, not an address) stand outside it, as in every message.
        label = "Type “{}” to confirm" if quote else "Type {} to confirm"
        self.fields["confirm"].label = format_html(label, html_isolated(expected))
        self.fields["confirm"].error_messages["required"] = f"Type {what} to confirm."

    def matches(self, typed: str) -> bool:
        return typed == self.expected

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"]
        if not self.matches(typed):
            # Text (an error list escapes it), the name between FSI and PDI as in a message.
            shown = quoted(self.expected) if self.quote else text_isolated(self.expected)
            raise forms.ValidationError(
                f"That is not {self.what}: type {shown} exactly.", code="mismatch"
            )
        return typed


class ProjectDeleteForm(TypedConfirmationForm):
    """Deleting a project: its name typed again."""

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(
            *args, what="this project's name", expected=project.name, quote=True, **kwargs
        )
        self.project = project


class AccountDeleteForm(TypedConfirmationForm):
    """Deleting one's account: the address typed again (in any case, as addresses are)."""

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, what="your address", expected=user.email, **kwargs)

    def matches(self, typed: str) -> bool:
        return typed.lower() == self.expected.lower()


ORIGINS_AT_MOST = 50
_ORIGIN_COLUMN = AllowedOrigin._meta.get_field("origin").max_length or 255


class AllowedOriginsForm(forms.Form):
    """Browser origins for the Client API, one per line: scheme, host and optional port."""

    origins = forms.CharField(
        label="Allowed browser origins",
        required=False,
        # The most origins, each as long as the column and a line break: past 10,000
        # characters a value is kept in its field only within its max_length
        # (core.forms.NoSecretBoundField), and a list refused as too long is kept to trim.
        max_length=ORIGINS_AT_MOST * (_ORIGIN_COLUMN + 1),
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "https://app.example.com", "spellcheck": "false"}
        ),
        help_text="One per line, like https://app.example.com or http://localhost:3000. "
        "Browsers on these origins may call the Client API with this project's client tokens.",
    )

    def clean_origins(self) -> list[str]:
        """Every bad line is named at once (line number and text), not only the first."""
        origins: list[str] = []
        errors: list[forms.ValidationError] = []
        for number, line in enumerate(self.cleaned_data["origins"].splitlines(), start=1):
            raw = line.strip().rstrip("/")
            if not raw:
                continue
            origin = _origin(raw)
            if origin is None:
                errors.append(
                    forms.ValidationError(
                        "Line %(number)s, “%(line)s”, is not an origin. Write scheme, host and "
                        "optional port only, like https://app.example.com.",
                        code="invalid_origin",
                        # Isolated: an override in it reversed the rest of the message.
                        params={"number": number, "line": text_isolated(raw[:200])},
                    )
                )
            elif origin not in origins:
                origins.append(origin)
        if errors:
            raise forms.ValidationError(errors)
        if len(origins) > ORIGINS_AT_MOST:
            raise forms.ValidationError(f"At most {ORIGINS_AT_MOST} origins.", code="too_many")
        return origins


# What an Origin header can hold as the API compares it (api.authentication.ORIGIN_SHAPE),
# within the column.
_ORIGIN_TEXT = re.compile(rf"[\x21-\x7e]{{1,{_ORIGIN_COLUMN}}}")


# What no host a browser puts in Origin holds, and urlsplit leaves in one (the WHATWG URL
# standard's forbidden domain code points, less those urlsplit parts a URL at or refuses,
# and the space and controls _ORIGIN_TEXT refuses): a backslash is the path's slash to a
# browser, an escape is decoded, and ^, |, < and > make no URL at all.
_NOT_IN_A_HOST = re.compile(r"[%\\<>^|]")


def _origin(raw: str) -> str | None:
    """`raw` as a browser sends it in Origin (None if it is not an origin): IPv6 hosts in
    brackets, the scheme's default port left out."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:  # "http://[::1", or a port that is not a number from 0 to 65535
        return None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or _NOT_IN_A_HOST.search(parts.hostname)
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc  # a user or password, even an empty one
        or "*" in raw
    ):
        return None
    host = parts.hostname
    if not host.isascii():
        # As typed, not lowercased: Python's lower() ends a word's Σ as ς, a browser as σ.
        typed = parts.netloc.partition(":")[0]
        try:
            host = _browser_host(typed)
        except UnicodeError:
            return None
    try:
        host = _address_as_browsers_write_it(host)
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    # Port 0 is a port to a browser (it keeps ":0" in Origin), not the default one.
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")
    # A longer one could never match, and PostgreSQL refused it with a 500.
    return origin if _ORIGIN_TEXT.fullmatch(origin) else None


# A host whose last label is a number is an IPv4 address to a browser (WHATWG URL), or
# no host at all.
_ENDS_IN_A_NUMBER = re.compile(r"(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$")
_IPV4_TEXT = re.compile(r"[0-9a-fx.]+")


def _address_as_browsers_write_it(host: str) -> str:
    """`host` (lowercase, IPv6 without brackets) as a browser writes it in Origin: an
    address in its one form (127.1, 0x7f.0.0.1 and 2130706433 are 127.0.0.1; IPv6
    compressed, in hex, in brackets), any other host as it is. ValueError if no browser
    reads it as a host."""
    if ":" in host:
        address = ipaddress.IPv6Address(host)
        if address.scope_id:
            raise ValueError("a zone is the machine's own")
        mapped = address.ipv4_mapped
        if mapped is None:
            return f"[{address.compressed}]"
        # Python 3.13 writes this one's end in dotted form; browsers in hex.
        return f"[::ffff:{int(mapped) >> 16:x}:{int(mapped) & 0xFFFF:x}]"
    if not _ENDS_IN_A_NUMBER.search(host):
        return host
    if not _IPV4_TEXT.fullmatch(host):
        raise ValueError("not an IPv4 address")
    try:
        # inet_aton reads every form a browser does: 1 to 4 parts, decimal, octal, hex.
        return socket.inet_ntoa(socket.inet_aton(host.removesuffix(".")))
    except OSError:
        raise ValueError("not an IPv4 address") from None


# Letters that IDNA 2003 (Python's "idna" codec) maps away and browsers keep (UTS #46
# without its transitional mapping, as Chromium, Firefox and Safari read a host): to a
# browser "faß" is xn--fa-hia, to the codec "fass", which is another domain. ẞ is ß to both.
_KEPT_BY_BROWSERS = re.compile("([ßς])")
# What parts labels: the full stop, and the ideographic and fullwidth ones (UTS #46 maps
# them to it, as the codec does).
_LABEL_DOTS = re.compile("[.\u3002\uff0e\uff61]")
# Invisible joiners: the codec drops them ("a\u200db" became ab, another domain), and a
# browser refuses them nearly everywhere.
_JOINERS = ("\u200c", "\u200d")


def _browser_host(typed: str) -> str:
    """A host typed with letters beyond ASCII, in the xn--… form a browser sends it in.
    UnicodeError if it cannot be one."""
    if any(joiner in typed for joiner in _JOINERS):
        raise UnicodeError("an invisible joiner")
    labels = []
    for label in _LABEL_DOTS.split(typed.replace("ẞ", "ß")):
        if not _KEPT_BY_BROWSERS.search(label):
            labels.append(label.encode("idna").decode("ascii"))
            continue
        # The codec's mapping (case, compatibility forms) around the letters it would change.
        pieces = _KEPT_BY_BROWSERS.split(label)
        mapped = "".join(p if p in ("ß", "ς") else nameprep(p) for p in pieces)
        encoded = "xn--" + mapped.encode("punycode").decode("ascii")
        if len(encoded) > 63:
            raise UnicodeError("a label longer than 63")
        labels.append(encoded)
    return ".".join(labels).lower()


class InvitationForm(forms.Form):
    """Invite an email address into a project with a role.

    Nobody is looked up by email: the answer is the same whether or not the address has
    an account. Only this project's own members (listed on the page already) are named."""

    email = AccountEmailField(
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        error_messages={"required": "Enter the email address of the person to invite."},
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        if Membership.objects.filter(project=self.project, user__email__iexact=email).exists():
            raise forms.ValidationError(
                "This person is already a member of the project.", code="member"
            )
        if invitations_full(self.project, besides=email):
            raise forms.ValidationError(TOO_MANY_INVITATIONS, code="too_many")
        if members_full(self.project):
            raise forms.ValidationError(TOO_MANY_MEMBERS, code="too_many")
        return email


class RoleForm(forms.Form):
    """A member's role, as an owner changes it."""

    role = forms.ChoiceField(
        choices=Membership.Role.choices,
        error_messages={"invalid_choice": "Choose Owner or Member."},
    )


LIFETIME_CHOICES = [
    ("", "No maximum"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("180", "180 days"),
    ("366", "1 year"),
]


class KeyPolicyForm(forms.Form):
    """How long this project's API keys, and the personal access tokens used in it, may
    live at most."""

    max_key_days = forms.TypedChoiceField(
        label="API keys expire within",
        choices=LIFETIME_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        help_text="New keys must be given an expiry within it. Keys that live longer are "
        "marked “out of policy” on the API keys page; they keep working until you roll or "
        "revoke them.",
    )
    max_pat_days = forms.TypedChoiceField(
        label="Personal access tokens expire within",
        choices=LIFETIME_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Checked on every call: a member's token that lives longer (or never "
        "expires) is refused in this project with 403 insufficient_permissions, at once.",
    )
    leaked_key_action = forms.ChoiceField(
        label="When GitHub finds one of these keys in public",
        choices=Project.LeakedKeyAction.choices,
        initial=Project.LeakedKeyAction.REVOKE,
        required=False,  # not sent: as it was
        widget=forms.RadioSelect,
        help_text="GitHub's secret scanning reports Reminix keys pushed to public "
        "repositories. Either way a high alert is raised and the owners are emailed.",
    )


class SudoForm(forms.Form):
    """Your password, or a code from your authenticator app (or a recovery code)."""

    sudo_password = forms.CharField(
        label="Password",
        required=False,
        max_length=4096,
        strip=False,
        # The prompt interrupts what someone was doing: they can type at once, as on
        # GitHub's sudo page.
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    sudo_code = forms.CharField(
        label="Or a code from your authenticator app",
        required=False,
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"}
        ),
        help_text="A recovery code works too (it is then used up).",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("sudo_password") and not data.get("sudo_code") and not self.errors:
            self.add_error("sudo_password", "Enter your password, or a code.")
        for name in ("sudo_password", "sudo_code"):
            if "\x00" in (data.get(name) or ""):
                self.add_error(name, "That is not right. Check it and try again.")
        return data


class SecondFactorForm(forms.Form):
    """The sign-in's second step, and the code that confirms a new authenticator."""

    code = forms.CharField(
        label="Code",
        max_length=40,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
        error_messages={"required": "Enter the 6-digit code from your authenticator app."},
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        if "\x00" in code:
            raise forms.ValidationError("That code is not right. Check it and try again.")
        return str(code).strip()


class TwoFactorPolicyForm(forms.Form):
    """The owners' switch (Settings → General) that makes every member need a second factor to
    use the project's pages; project_set_two_factor_policy() refuses an owner without one."""

    require_two_factor = forms.BooleanField(
        label="Require two-factor authentication for every member",
        required=False,
        help_text="Members without a second factor then see only a page asking them to set "
        "one up. API keys they made keep working.",
    )
