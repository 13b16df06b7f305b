"""Portal forms of rooms: the shape of the input only; the rules live in ``rooms.services``."""

from __future__ import annotations

from typing import Any

from django import forms

from rooms.models import Membership, Room
from rooms.services.rooms import MAX_DIRECT_PARTICIPANTS
from safechat.unicode_text import username_lookup_form

NAME_MAX = Room._meta.get_field("name").max_length
TOPIC_MAX = Room._meta.get_field("topic").max_length


LISTED_LABEL = "Listed: anyone in the organisation can find this room and join it"


def visibility_of(listed: bool) -> str:
    """The room's ``Room.Visibility`` for the forms' "Listed" box."""
    return Room.Visibility.LISTED if listed else Room.Visibility.PRIVATE


class RoomSettingsForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    topic = forms.CharField(max_length=TOPIC_MAX, required=False)
    history_visible = forms.BooleanField(
        required=False, label="New members can read earlier messages"
    )
    # Not offered in a direct conversation (never listed): the view leaves it out there.
    listed = forms.BooleanField(required=False, label=LISTED_LABEL)


class MemberAddForm(forms.Form):
    # 151: a username (at most 150) typed as a mention, "@carol".
    username = forms.CharField(max_length=151)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def clean_username(self) -> str:
        """The username as stored, however it was typed: without one leading "@" (as in a
        mention, "@carol"), in its PRECIS ``UsernameCaseMapped`` form (RFC 8265, the one
        lookup form of sign-in, mentions and pickers: "Carol" is "carol"). A value that is
        no valid username is kept as typed: it names nobody, and the view answers so."""
        typed = str(self.cleaned_data["username"]).strip()
        name = typed.removeprefix("@").strip()
        if not name:
            raise forms.ValidationError("Enter a username.")
        return username_lookup_form(name)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class RoomCreateForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    topic = forms.CharField(max_length=TOPIC_MAX, required=False)
    history_visible = forms.BooleanField(
        required=False, label="New members can read earlier messages"
    )
    listed = forms.BooleanField(required=False, label=LISTED_LABEL)


class RoomMuteForm(forms.Form):
    mute = forms.ChoiceField(choices=Membership.Mute.choices, label="Notifications")


class PersonIdsField(forms.Field):
    """A list of person ids from checkboxes (``name=participants`` repeated): well-formed
    ids only; whether each names someone reachable is the service's question, asked under
    its locks, with one answer for "nobody" and "not for you"."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, *, max_count: int, **kwargs: Any) -> None:
        self.max_count = max_count
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[int]:
        if value in self.empty_values:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        if len(values) > self.max_count:
            raise forms.ValidationError(f"Pick at most {self.max_count} people.")
        ids = []
        for item in values:
            text = str(item).strip()
            if not text.isascii() or not text.isdigit() or len(text) > 12:
                raise forms.ValidationError("One of the people picked is not valid.")
            ids.append(int(text))
        return list(dict.fromkeys(ids))


class ConversationForm(forms.Form):
    participants = PersonIdsField(
        max_count=MAX_DIRECT_PARTICIPANTS - 1,
        label="People",
        error_messages={"required": "Pick at least one person."},
    )
