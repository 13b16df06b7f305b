"""The compliance admin's service form: one change made through one service."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import User
from compliance.services import ComplianceRefused


class ServiceForm(forms.ModelForm):  # type: ignore[type-arg]
    """A form whose ``clean`` performs the change through a service (``perform``, set by
    the admin page); a refusal becomes the form's error, and nothing is saved twice."""

    actor: User | None = None
    result: Any = None

    def perform(self) -> Any:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            self.result = self.perform()
        except ComplianceRefused as refusal:
            raise forms.ValidationError(str(refusal)) from None
        return cleaned

    def _post_clean(self) -> None:
        # The service validated and saved; the model's own checks would run on a stale copy.
        pass
