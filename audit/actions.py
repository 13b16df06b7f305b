"""The catalogue of audited actions: every event names one of these.

Names are dotted, lower case, ``<domain>.<object>[.<detail>].<verb in past tense>``.
Each member carries a one-line description; ``docs/audit.md`` renders the same table
(a test keeps the two in step). Add members here, never pass free text: an unknown
name is a programming error and ``audit_record`` refuses it.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    description: str

    def __new__(cls, value: str, description: str = "") -> AuditAction:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    # --- Authentication -----------------------------------------------------
    AUTH_LOGIN_SUCCEEDED = (
        "auth.login.succeeded",
        "A user signed in with password and second factor.",
    )
    AUTH_LOGIN_FAILED = (
        "auth.login.failed",
        "A sign-in attempt failed (unknown user or wrong password).",
    )
    AUTH_PASSWORD_VERIFIED = (
        "auth.password.verified",
        "The password step of a sign-in succeeded; the second factor is still due.",
    )
    AUTH_LOGOUT = "auth.logout", "A user signed out."
    AUTH_OTP_VERIFIED = "auth.otp.verified", "A second-factor code was accepted."
    AUTH_OTP_FAILED = "auth.otp.failed", "A second-factor code was refused."
    AUTH_LOCKOUT = "auth.lockout", "An account, device or address was locked out after failures."
    AUTH_LOCKOUT_LIFTED = (
        "auth.lockout.lifted",
        "A lockout was lifted, by time or by an administrator.",
    )
    AUTH_BREAK_GLASS_USED = (
        "auth.break_glass.used",
        "A break-glass account's password was accepted while local passwords are off; the "
        "security admins were alerted, and its second factor is still due.",
    )
    AUTH_PASSWORD_CHANGED = "auth.password.changed", "A user changed their password."
    AUTH_SESSION_REFUSED = (
        "auth.session.refused",
        "A credential change was refused: its session had ended, or its credentials changed, "
        "while it was in flight.",
    )
    AUTH_PASSWORD_RESET_REQUESTED = (
        "auth.password.reset.requested",
        "A password reset was requested.",
    )
    AUTH_PASSWORD_RESET = "auth.password.reset", "A password was reset through a reset link."
    AUTH_PASSWORD_RESET_REFUSED = (
        "auth.password.reset.refused",
        "A password reset link was refused (unknown, used or expired).",
    )
    AUTH_BOOTSTRAP_USED = (
        "auth.bootstrap.used",
        "The one-time bootstrap administrator path was used.",
    )
    AUTH_BOOTSTRAP_REFUSED = (
        "auth.bootstrap.refused",
        "The bootstrap path was refused (already used or invalid).",
    )
    AUTH_FEDERATED_VERIFIED = (
        "auth.federated.verified",
        "A sign-in through an identity provider passed every check; SafeChat's second factor "
        "is still due unless the provider is trusted for it and asserted several factors.",
    )
    AUTH_FEDERATED_REFUSED = (
        "auth.federated.refused",
        "A sign-in through an identity provider (OpenID Connect or SAML) was refused (state, "
        "nonce, audience, recipient, issuer, signature, wrapping, expiry or replay; an unknown "
        "provider; an identity linked to no account; too many answers from one address), or "
        "a provider's logout request or back-channel Logout Token was (its detail says so).",
    )
    AUTH_FEDERATED_LOGOUT = (
        "auth.federated.logout",
        "An identity provider's logout (SAML single logout, OpenID Connect back-channel "
        "logout) ended the sessions it named.",
    )

    # --- Accounts and roles -------------------------------------------------
    ACCOUNT_INVITED = "account.invited", "A person was invited to create an account."
    ACCOUNT_INVITATION_ACCEPTED = (
        "account.invitation.accepted",
        "An account invitation was accepted.",
    )
    ACCOUNT_INVITATION_REFUSED = (
        "account.invitation.refused",
        "An account invitation was refused or expired.",
    )
    ACCOUNT_INVITATION_REVOKED = (
        "account.invitation.revoked",
        "A pending account invitation was withdrawn; its link creates nothing.",
    )
    ACCOUNT_CREATED = "account.created", "An account was created."
    ACCOUNT_DEACTIVATED = "account.deactivated", "An account was deactivated; its sessions end."
    ACCOUNT_REACTIVATED = (
        "account.reactivated",
        "A deactivated account was reactivated (its old sessions and tokens stay ended).",
    )
    ACCOUNT_PROVISIONING_UPDATED = (
        "account.provisioning.updated",
        "An identity provider's provisioning (SCIM) changed an account's details (the fields "
        "changed, never their values).",
    )
    ACCOUNT_PROVISIONING_REFUSED = (
        "account.provisioning.refused",
        "An identity provider's provisioning request (SCIM) was refused: a token without the "
        "scim scope, a malformed filter or body, an invalid or taken value, an unknown account.",
    )
    ACCOUNT_PROVISIONING_GROUP_CREATED = (
        "account.provisioning.group_created",
        "An identity provider's provisioning (SCIM) created a group (its id, displayName "
        "and externalId, its members' ids).",
    )
    ACCOUNT_PROVISIONING_GROUP_UPDATED = (
        "account.provisioning.group_updated",
        "An identity provider's provisioning (SCIM) changed a group: its displayName or "
        "externalId, the members added and removed (by id).",
    )
    ACCOUNT_PROVISIONING_GROUP_DELETED = (
        "account.provisioning.group_deleted",
        "An identity provider's provisioning (SCIM) deleted a group (its members lose what "
        "it mapped to).",
    )
    ACCOUNT_IDP_ACCESS_APPLIED = (
        "account.idp_access.applied",
        "A sign-in through an identity provider, or a SCIM group's change (via: scim), "
        "changed the person's roles or information-barrier groups to match the provider's "
        "groups (the configured mapping), or a change it asked for was held back by a rule "
        "(its reason).",
    )
    ACCOUNT_PROFILE_UPDATED = (
        "account.profile.updated",
        "A person changed their own display name (the fields changed, never their values).",
    )
    ACCOUNT_PROFILE_REFUSED = (
        "account.profile.refused",
        "A change to one's own display name was refused: the account is no longer active.",
    )
    ACCOUNT_ROLE_GRANTED = "account.role.granted", "A role (group) was granted to an account."
    ACCOUNT_ROLE_REVOKED = "account.role.revoked", "A role (group) was revoked from an account."
    ACCOUNT_ROLE_REFUSED = (
        "account.role.refused",
        "A role change was refused (no permission, or on one's own account).",
    )
    ACCOUNT_ADMIN_REFUSED = (
        "account.admin.refused",
        "An account administration action was refused (no permission, or on oneself).",
    )
    ACCOUNT_IDENTITY_LINKED = (
        "account.identity.linked",
        "An account was linked to a person's identity at an identity provider.",
    )
    ACCOUNT_IDENTITY_UNLINKED = (
        "account.identity.unlinked",
        "An account's link to an identity provider was removed; sessions it verified end.",
    )

    # --- Second factors -----------------------------------------------------
    FACTOR_ADDED = "factor.added", "A second-factor device was added and confirmed."
    FACTOR_RENAMED = "factor.renamed", "A second-factor device was renamed."
    FACTOR_REMOVED = "factor.removed", "A second-factor device was removed."
    FACTOR_RESET = "factor.reset", "An administrator reset a user's second factors."
    FACTOR_BACKUP_CODES_GENERATED = (
        "factor.backup_codes.generated",
        "New backup codes were generated (the codes are never logged).",
    )

    # --- Sessions and API tokens --------------------------------------------
    SESSION_ENDED = (
        "session.ended",
        "A session was ended (by its user, an administrator or expiry).",
    )
    SESSION_ENDED_ALL = "session.ended_all", "All sessions of a user were ended."
    TOKEN_CREATED = "token.created", "An API token was created (the token itself is never logged)."
    TOKEN_REVOKED = "token.revoked", "An API token was revoked."
    TOKEN_CREATE_REFUSED = (
        "token.create.refused",
        "A token asked for a token wider or longer-lived than itself; nothing was created.",
    )
    TOKEN_USED_REFUSED = (
        "token.used.refused",
        "A request with a revoked, expired or unknown token was refused.",
    )

    # --- Rooms, membership, barriers ----------------------------------------
    ROOM_CREATED = "room.created", "A room was created."
    ROOM_UPDATED = "room.updated", "A room's settings were changed."
    ROOM_ARCHIVED = "room.archived", "A room was archived."
    ROOM_UNARCHIVED = "room.unarchived", "An archived room was made writable again."
    ROOM_MEMBER_ADDED = "room.member.added", "A member was added to a room."
    ROOM_MEMBER_REMOVED = "room.member.removed", "A member was removed from a room."
    ROOM_MEMBER_ROLE_CHANGED = "room.member.role_changed", "A member's role in a room changed."
    ROOM_MEMBER_MUTE_CHANGED = (
        "room.member.mute_changed",
        "A member changed how a room notifies them (muted, mentions included or not, or unmuted).",
    )
    ROOM_INVITATION_SENT = "room.invitation.sent", "An invitation to a room was sent."
    ROOM_INVITATION_ACCEPTED = "room.invitation.accepted", "An invitation to a room was accepted."
    ROOM_ACCESS_DENIED = "room.access.denied", "Access to a room (or something in it) was denied."
    ACCESS_REFUSED = (
        "access.refused",
        "A signed-in request was answered 403 by a check outside the services (a token's "
        "scope, a page's or the admin's permission, CSRF).",
    )
    GROUP_CREATED = (
        "group.created",
        "A group (of people that information barriers separate) was created.",
    )
    BARRIER_CREATED = "barrier.created", "An information barrier was created."
    BARRIER_DELETED = "barrier.deleted", "An information barrier was deleted."
    BARRIER_REFUSED = "barrier.refused", "An action was refused by an information barrier."

    # --- Messages and files (never their content) ---------------------------
    MESSAGE_POSTED = "message.posted", "A message was posted (its text is never logged)."
    MESSAGE_EDITED = "message.edited", "A message was edited; a new revision exists."
    MESSAGE_DELETED = "message.deleted", "A message was deleted."
    FILE_UPLOADED = "file.uploaded", "A file was uploaded to the vault."
    FILE_DOWNLOADED = "file.downloaded", "A file was downloaded from the vault."
    FILE_DELETED = "file.deleted", "A file was deleted from the vault."
    FILE_UPLOAD_STARTED = (
        "file.upload.started",
        "An upload to the vault began (declared length; never the name).",
    )
    FILE_UPLOAD_REFUSED = (
        "file.upload.refused",
        "An upload was refused: too large, a bad name, a wrong offset, or not allowed.",
    )
    FILE_UPLOAD_TERMINATED = (
        "file.upload.terminated",
        "An unfinished upload was cancelled by its uploader; its partial blob is removed.",
    )
    FILE_UPLOAD_EXPIRED = (
        "file.upload.expired",
        "An abandoned upload passed its expiry; its partial blob was removed.",
    )
    FILE_SCAN_CLEAN = "file.scan.clean", "The malware scan found a file clean; it is now visible."
    FILE_SCAN_INFECTED = (
        "file.scan.infected",
        "The malware scan found a file infected; it is discarded and never visible.",
    )
    FILE_WITHHELD = (
        "file.withheld",
        "A completed upload was not shared: its room was archived or its uploader could no "
        "longer share in it; it is kept encrypted and never visible.",
    )
    FILE_INTEGRITY_FAILED = (
        "file.integrity.failed",
        "A stored file failed authentication (tampered, truncated, reordered or missing).",
    )

    # --- Keys (never key material) ------------------------------------------
    KEY_USER_CREATED = "key.user.created", "A user's key pair was created."
    KEY_COMPLIANCE_CREATED = (
        "key.compliance.created",
        "The organisation's compliance key pair was created.",
    )
    KEY_COMPLIANCE_USED = "key.compliance.used", "The compliance key was used to open room keys."
    KEY_EPOCH_CREATED = "key.epoch.created", "A new room key epoch started."
    KEY_EPOCH_SHREDDED = "key.epoch.shredded", "A room epoch key was destroyed (crypto-shredding)."
    KEY_INTEGRITY_FAILED = (
        "key.integrity.failed",
        "Stored key material or content failed its authenticity check (tampering or "
        "corruption); never used, recorded once per item.",
    )
    KEY_RECORD_BACKFILLED = (
        "key.record.backfilled",
        "A key record written before record MACs was MACed by the one-time backfill the "
        "operator asked for (SAFECHAT_RECORD_MAC_BACKFILL=1); its contents were trusted.",
    )
    KEY_MASTER_ROTATED = (
        "key.master.rotated",
        "Master-key rotation finished; everything is re-wrapped.",
    )
    KEY_MASTER_ROTATION_STARTED = "key.master.rotation.started", "Master-key rotation started."
    KEY_MASTER_VERSION_RETIRED = "key.master.version.retired", "A master-key version was retired."
    KEY_MASTER_VERSION_ADDED = (
        "key.master.version.added",
        "A master-key version was added and published to every process.",
    )

    # --- Retention and legal hold -------------------------------------------
    RETENTION_PURGED = "retention.purged", "Records past their retention age were purged."
    RETENTION_DRY_RUN = (
        "retention.dry_run",
        "A retention dry run counted what a purge would remove.",
    )
    RETENTION_POLICY_SET = (
        "retention.policy.set",
        "A retention policy (the organisation's default or a room's) was set.",
    )
    RETENTION_POLICY_REFUSED = (
        "retention.policy.refused",
        "A retention policy change was refused (below the organisation minimum, not allowed).",
    )
    RETENTION_RUN_REQUESTED = (
        "retention.run.requested",
        "A compliance officer asked for a retention run now; the worker runs it as theirs.",
    )
    RETENTION_RUN_STARTED = "retention.run.started", "A retention run started."
    RETENTION_RUN_FINISHED = (
        "retention.run.finished",
        "A retention run finished; its counts are what it purged and shredded.",
    )
    RETENTION_RUN_FAILED = (
        "retention.run.failed",
        "A retention run stopped on an error; what it committed stands, the next run goes on.",
    )
    RETENTION_RUN_INTERRUPTED = (
        "retention.run.interrupted",
        "A retention run was found dead by a later run, which completes its work.",
    )
    RETENTION_RUN_REFUSED = (
        "retention.run.refused",
        "A retention run was refused (another run is working, no such room), or stopped "
        "before a batch because the person it acts for lost the right.",
    )
    RETENTION_BACKUP_WARNING = (
        "retention.backup.warning",
        "Backups are kept longer than the shortest retention policy: purged content "
        "outlives its policy in them.",
    )
    BACKUP_RESTORED = (
        "backup.restored",
        "A data backup was restored into this database, once it and the key material "
        "verified; extra: when the backup was taken, its audit head seq.",
    )
    LEGAL_HOLD_PLACED = "legal_hold.placed", "A legal hold was placed."
    LEGAL_HOLD_RELEASED = "legal_hold.released", "A legal hold was released."
    LEGAL_HOLD_REFUSED = (
        "legal_hold.refused",
        "Placing or releasing a legal hold was refused (incomplete, a bad range, "
        "already released, not allowed).",
    )
    COMPLIANCE_CONTENT_VIEWED = (
        "compliance.content.viewed",
        "A compliance officer viewed a page of a room's or a custodian's content through the "
        "compliance key (what was shown by id and count, never the content).",
    )
    EXPORT_REQUESTED = (
        "export.requested",
        "A compliance officer requested an eDiscovery export (its scope and scope digest).",
    )
    EXPORT_APPROVED = (
        "export.approved",
        "A second compliance officer approved an eDiscovery export, naming its scope digest.",
    )
    EXPORT_REFUSED = (
        "export.refused",
        "A second compliance officer refused an eDiscovery export, with a reason.",
    )
    EXPORT_STARTED = "export.started", "An approved eDiscovery export started building."
    EXPORT_READ = (
        "export.read",
        "An eDiscovery export read a batch of messages through the compliance key (ids, "
        "count and epochs, never content).",
    )
    EXPORT_FINISHED = (
        "export.finished",
        "An eDiscovery archive was built, signed and stored encrypted to its recipient.",
    )
    EXPORT_FAILED = "export.failed", "An eDiscovery export stopped on an error; nothing kept."
    EXPORT_DOWNLOADED = (
        "export.downloaded",
        "The requesting officer downloaded an eDiscovery archive (which download of how many).",
    )
    EXPORT_EXPIRED = "export.expired", "An eDiscovery archive expired and was removed."
    EXPORT_ACTION_REFUSED = (
        "export.action.refused",
        "An export request, approval or refusal was refused (bad input, one's own request, "
        "already decided, a different scope, not allowed).",
    )
    SUPERVISION_LEXICON_CREATED = (
        "supervision.lexicon.created",
        "A compliance officer created a supervision lexicon.",
    )
    SUPERVISION_LEXICON_CHANGED = (
        "supervision.lexicon.changed",
        "A supervision lexicon was switched on or off.",
    )
    SUPERVISION_TERM_ADDED = (
        "supervision.term.added",
        "A phrase or pattern was added to a supervision lexicon.",
    )
    SUPERVISION_TERM_REMOVED = (
        "supervision.term.removed",
        "A phrase or pattern of a supervision lexicon was switched off.",
    )
    SUPERVISION_SAMPLING_SET = (
        "supervision.sampling.set",
        "The random sampling rate of the organisation, a room or a custodian was set.",
    )
    SUPERVISION_RUN_REQUESTED = (
        "supervision.run.requested",
        "A compliance officer asked for a supervision matching run now.",
    )
    SUPERVISION_RUN_STARTED = "supervision.run.started", "A supervision matching run started."
    SUPERVISION_READ = (
        "supervision.read",
        "A supervision run read a batch of messages through the compliance key (ids, count "
        "and epochs, never content).",
    )
    SUPERVISION_MATCHED = (
        "supervision.matched",
        "A supervision run's batch was matched: how many read, flagged, sampled, unreadable.",
    )
    SUPERVISION_RUN_FINISHED = (
        "supervision.run.finished",
        "A supervision matching run finished (its totals).",
    )
    SUPERVISION_RUN_FAILED = (
        "supervision.run.failed",
        "A supervision matching run stopped on an error (its type) or was found dead.",
    )
    SUPERVISION_ITEM_VIEWED = (
        "supervision.item.viewed",
        "A compliance officer opened a message of the supervision queue through the "
        "compliance key (which item and message, never the content).",
    )
    SUPERVISION_ITEM_ESCALATED = (
        "supervision.item.escalated",
        "A reviewer escalated a message of the supervision queue, with a note (sealed; "
        "the event records its length, never its text).",
    )
    SUPERVISION_ITEM_CLOSED = (
        "supervision.item.closed",
        "A reviewer closed a message of the supervision queue, with a reason (sealed; "
        "the event records its length, never its text).",
    )
    SUPERVISION_ACTION_REFUSED = (
        "supervision.action.refused",
        "A supervision change, run or decision was refused (a bad term or rate, one's own "
        "message, already decided, no note, another run working, not allowed).",
    )

    # --- The audit log itself -----------------------------------------------
    AUDIT_CHECKPOINT_WRITTEN = (
        "audit.checkpoint.written",
        "A signed checkpoint of the chain head was written.",
    )
    AUDIT_VERIFIED = "audit.verified", "The chain and its checkpoints were verified intact."
    AUDIT_VERIFICATION_FAILED = (
        "audit.verification.failed",
        "Verification found the chain or a checkpoint broken.",
    )
    AUDIT_EXPORTED = "audit.exported", "Audit events were exported."
    AUDIT_SEARCHED = "audit.searched", "A compliance officer searched or filtered the audit log."


def audit_action_parse(value: object) -> AuditAction:
    """The catalogue member for ``value``; TypeError/ValueError for anything else.

    Accepts a member or its exact dotted name, so callers may pass either.
    """
    if isinstance(value, AuditAction):
        return value
    if not isinstance(value, str):
        raise TypeError(f"audit action must be an AuditAction, not {type(value).__name__}")
    try:
        return AuditAction(value)
    except ValueError:
        raise ValueError(f"unknown audit action {value!r}: add it to audit.actions") from None


def catalogue_markdown() -> str:
    """The catalogue as the Markdown table in docs/audit.md (a test compares the two)."""
    lines = ["| action | meaning |", "|---|---|"]
    lines += [f"| `{action.value}` | {action.description} |" for action in AuditAction]
    return "\n".join(lines)
