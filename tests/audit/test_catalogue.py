"""The action catalogue: complete, documented, and the docs in step with the code."""

from __future__ import annotations

from pathlib import Path

from audit.actions import AuditAction, audit_action_parse, catalogue_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"

REQUIRED = [
    "auth.login.succeeded",
    "auth.login.failed",
    "auth.logout",
    "auth.otp.verified",
    "auth.otp.failed",
    "auth.lockout",
    "auth.lockout.lifted",
    "auth.password.changed",
    "auth.password.reset.requested",
    "auth.password.reset",
    "auth.bootstrap.used",
    "auth.bootstrap.refused",
    "account.invited",
    "account.invitation.accepted",
    "account.invitation.refused",
    "account.created",
    "account.deactivated",
    "account.role.granted",
    "account.role.revoked",
    "factor.added",
    "factor.renamed",
    "factor.removed",
    "factor.reset",
    "factor.backup_codes.generated",
    "session.ended",
    "session.ended_all",
    "token.created",
    "token.revoked",
    "token.used.refused",
    "room.created",
    "room.updated",
    "room.archived",
    "room.member.added",
    "room.member.removed",
    "room.member.role_changed",
    "room.invitation.sent",
    "room.invitation.accepted",
    "room.access.denied",
    "group.created",
    "barrier.created",
    "barrier.deleted",
    "barrier.refused",
    "message.posted",
    "message.edited",
    "message.deleted",
    "file.uploaded",
    "file.downloaded",
    "file.deleted",
    "file.upload.started",
    "file.upload.refused",
    "file.upload.terminated",
    "file.upload.expired",
    "file.scan.clean",
    "file.scan.infected",
    "file.integrity.failed",
    "key.user.created",
    "key.compliance.created",
    "key.compliance.used",
    "key.epoch.created",
    "key.epoch.shredded",
    "key.master.rotated",
    "key.master.rotation.started",
    "key.master.version.retired",
    "retention.purged",
    "retention.dry_run",
    "legal_hold.placed",
    "legal_hold.released",
    "audit.checkpoint.written",
    "audit.verified",
    "audit.verification.failed",
    "audit.exported",
    "audit.searched",
]


def test_every_required_action_is_in_the_catalogue() -> None:
    assert set(REQUIRED) <= {action.value for action in AuditAction}


def test_names_are_unique_dotted_and_described() -> None:
    values = [action.value for action in AuditAction]
    assert len(values) == len(set(values))
    for action in AuditAction:
        assert action.value == action.value.lower()
        assert "." in action.value
        assert action.description.endswith(".")
        assert audit_action_parse(action.value) is action


def test_the_documentation_renders_the_catalogue() -> None:
    # given the documented table between its markers
    text = DOCS.read_text(encoding="utf-8")
    documented = text.split("<!-- catalogue:start -->")[1].split("<!-- catalogue:end -->")[0]

    # then it is exactly the catalogue (regenerate with audit.actions.catalogue_markdown())
    assert documented.strip() == catalogue_markdown()
