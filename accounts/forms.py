"""Portal forms; validation of input shape only (rules live in the services)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation

from accounts.models import ApiToken
from accounts.roles import ROLE_CHOICES, Role


class SignInForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class CodeForm(forms.Form):
    device = forms.ChoiceField(label="Factor")
    code = forms.CharField(
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )

    def __init__(self, *args: object, choices: list[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["device"].choices = choices  # type: ignore[attr-defined]


class TotpConfirmForm(forms.Form):
    name = forms.CharField(max_length=64, initial="Authenticator app")
    code = forms.CharField(
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class RenameForm(forms.Form):
    name = forms.CharField(max_length=64)


class NewPasswordMixin(forms.Form):
    new_password1 = forms.CharField(
        label="New password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    new_password2 = forms.CharField(
        label="New password again",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("new_password1") != data.get("new_password2"):
            raise forms.ValidationError("The two passwords differ.")
        return data


class PasswordChangeForm(NewPasswordMixin):
    current_password = forms.CharField(
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    field_order: tuple[str, ...] = ("current_password", "new_password1", "new_password2")


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField()


class PasswordResetConfirmForm(NewPasswordMixin):
    pass


class DisplayNameForm(forms.Form):
    """A display name's two fields, optional; their rules are the service's
    (``accounts.services.profile.display_name_clean``), so every edge answers alike."""

    first_name = forms.CharField(
        label="First name",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "given-name", "dir": "auto"}),
    )
    last_name = forms.CharField(
        label="Last name",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name", "dir": "auto"}),
    )


class ProfileForm(DisplayNameForm):
    pass


class AccountCreateForm(DisplayNameForm, NewPasswordMixin):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    field_order: tuple[str, ...] = (
        "first_name", "last_name", "username", "new_password1", "new_password2",
    )  # fmt: skip


class BootstrapForm(AccountCreateForm):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    field_order: tuple[str, ...] = (
        "first_name", "last_name", "username", "email", "new_password1", "new_password2",
    )  # fmt: skip


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ)
    # The longest life (``SAFECHAT_TOKEN_MAX_DAYS``) is the service's rule, for every edge.
    days = forms.IntegerField(min_value=1)

    def __init__(self, *args: Any, can_provision: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not can_provision:
            # A SCIM token is a security admin's to issue (the service refuses it anyway).
            field = self.fields["scope"]
            assert isinstance(field, forms.ChoiceField)  # noqa: S101 - declared above
            field.choices = [c for c in ApiToken.Scope.choices if c[0] != ApiToken.Scope.SCIM]


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.MEMBER.value)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class LockoutLiftForm(forms.Form):
    username = forms.CharField(max_length=150, required=False)
    ip_address = forms.GenericIPAddressField(required=False)


class IdentityLinkForm(forms.Form):
    """Link an account to a person's identity at a configured provider (security admins)."""

    username = forms.CharField(max_length=150)
    provider = forms.ChoiceField(choices=())
    # The provider's subject exactly as it sends it (``sub``): never stripped or folded.
    subject = forms.CharField(max_length=255, strip=False)

    def __init__(self, *args: Any, providers: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = providers  # type: ignore[attr-defined]
