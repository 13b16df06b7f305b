"""Portal routes of rooms: the chat page, new rooms and conversations, browsing listed
rooms, and the form endpoints of a room (POST only)."""

from django.urls import path

from rooms import views

app_name = "rooms"

urlpatterns = [
    path("", views.chat, name="chat"),
    path("new/", views.room_new, name="room-new"),
    path("conversations/new/", views.conversation_new, name="conversation-new"),
    path("people/", views.people_directory, name="people"),
    path("mentions/", views.mentions, name="mentions"),
    path("emoji.json", views.emoji_list, name="emoji"),
    path("browse/", views.rooms_browse, name="browse"),
    path("<int:room_id>/join/", views.room_join, name="room-join"),
    path("<int:room_id>/mute/", views.room_mute, name="room-mute"),
    path("<int:room_id>/settings/", views.room_settings, name="room-settings"),
    path("<int:room_id>/archive/", views.room_archive, name="room-archive"),
    path("<int:room_id>/unarchive/", views.room_unarchive, name="room-unarchive"),
    path("<int:room_id>/members/add/", views.member_add, name="member-add"),
    path(
        "<int:room_id>/members/<int:user_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
    path("<int:room_id>/members/<int:user_id>/role/", views.member_role, name="member-role"),
]
