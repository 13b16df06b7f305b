"""Portal forms of rooms: the shape of the input only; the rules live in ``rooms.services``."""

from __future__ import annotations

from django import forms

from rooms.models import Membership, Room

NAME_MAX = Room._meta.get_field("name").max_length
TOPIC_MAX = Room._meta.get_field("topic").max_length


class RoomSettingsForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    topic = forms.CharField(max_length=TOPIC_MAX, required=False)
    history_visible = forms.BooleanField(
        required=False, label="New members can read earlier messages"
    )


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
