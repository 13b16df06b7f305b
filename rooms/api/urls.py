from django.urls import path

from rooms.api import views

urlpatterns = [
    path("rooms/", views.RoomListApi.as_view(), name="api-rooms"),
    path("changes/", views.ChangeFeedApi.as_view(), name="api-changes"),
    path("people/", views.PeopleListApi.as_view(), name="api-people"),
    path("rooms/create/", views.RoomCreateApi.as_view(), name="api-rooms-create"),
    path("rooms/joinable/", views.RoomJoinableListApi.as_view(), name="api-rooms-joinable"),
    path("direct/", views.DirectConversationCreateApi.as_view(), name="api-direct-create"),
    path("rooms/<int:room_id>/", views.RoomDetailApi.as_view(), name="api-room"),
    path("rooms/<int:room_id>/join/", views.RoomJoinApi.as_view(), name="api-room-join"),
    path("rooms/<int:room_id>/mute/", views.RoomMuteApi.as_view(), name="api-room-mute"),
    path("rooms/<int:room_id>/archive/", views.RoomArchiveApi.as_view(), name="api-room-archive"),
    path(
        "rooms/<int:room_id>/unarchive/",
        views.RoomUnarchiveApi.as_view(),
        name="api-room-unarchive",
    ),
    path("rooms/<int:room_id>/members/", views.MemberListApi.as_view(), name="api-members"),
    path(
        "rooms/<int:room_id>/members/<int:user_id>/",
        views.MemberDetailApi.as_view(),
        name="api-member",
    ),
    path("rooms/<int:room_id>/messages/", views.MessageListApi.as_view(), name="api-messages"),
    path(
        "rooms/<int:room_id>/messages/<int:message_id>/",
        views.MessageDetailApi.as_view(),
        name="api-message",
    ),
    path(
        "rooms/<int:room_id>/messages/<int:message_id>/reactions/",
        views.ReactionToggleApi.as_view(),
        name="api-message-reactions",
    ),
    path("rooms/<int:room_id>/read-marker/", views.ReadMarkerApi.as_view(), name="api-read-marker"),
    path("mentions/", views.MentionListApi.as_view(), name="api-mentions"),
]
