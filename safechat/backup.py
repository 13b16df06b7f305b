"""Backup and restore of a SafeChat installation, with its key material kept apart.

Two backups, never written together (docs/operations.md, "Backup and restore"):

- :func:`backup_create` (``manage.py backup --to DIR``): the database (PostgreSQL with
  ``pg_dump -Fc``, SQLite with its online backup API) and the file vault's blobs, copied
  as stored (ciphertext; nothing is decrypted), with ``manifest.json``: the SHA-256 of
  every file, the applied migrations, the master-key versions the database's wrapped keys
  use (with one wrapped key per version, to test the keys against before anything is
  written), the audit chain's head and the key that signed its last checkpoint. No key
  material and no plaintext content is in it: everything the database and the vault hold
  is already encrypted at rest.
- :func:`keys_backup_create` (``manage.py backup --keys-to DIR``): the master key file (or,
  with ``SAFECHAT_MASTER_KEYS``, its value; with the PKCS#11 provider only a reference to
  the token, whose keys stay in the HSM), the audit signing key and the anchor file.

:func:`restore_run` (``manage.py restore --from DIR``) verifies the whole backup before it
writes anything: the manifest's form, every file's SHA-256 (and no file missing or
added), migrations this code knows, the database engine, and that the key material
configured here opens one wrapped key per master-key version and holds the audit key
that signed the checkpoints. It refuses a target that is not empty (any table in the
database, any blob in the vault) unless ``force``. After writing, it opens one epoch key
per room through a member's copy; if that fails, what it wrote is removed again.

Raises :class:`BackupError` with one clear sentence per problem; never half-restores.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.anchors import anchor_file_path, database_identity
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_record
from audit.signing import trusted_public_keys
from safechat.crypto import CryptoError, DecryptionError, UnknownKeyVersion
from safechat.keyring.integrity import record_mac_key_aad
from safechat.keyring.models import (
    ComplianceKeyPair,
    RecordMacKey,
    RoomEpoch,
    SealedEpochKey,
    UserKeyPair,
)
from safechat.keyring.provider import get_provider, reset_provider, settings_env
from safechat.keyring.services import (
    clear_key_caches,
    compliance_private_key_aad,
    room_epoch_key_for,
    user_private_key_aad,
)

MANIFEST = "manifest.json"
KEYS_MANIFEST = "keys-manifest.json"
DATA_FORMAT = "safechat-data-backup/1"
KEYS_FORMAT = "safechat-keys-backup/1"
PG_DUMP = "database.pgdump"
SQLITE_COPY = "database.sqlite3"
VAULT = "vault"
CHUNK = 1024 * 1024
BACKUP_SYSTEM = SystemActor("backup")

# The models whose rows the master key wraps: label -> (model, field, aad of a pk).
_WRAPPED: dict[str, tuple[Any, str, Any]] = {
    "user": (UserKeyPair, "wrapped_private_key", None),
    "compliance": (ComplianceKeyPair, "wrapped_private_key", compliance_private_key_aad),
    "record-mac": (RecordMacKey, "wrapped_key", record_mac_key_aad),
}


class BackupError(Exception):
    """A backup or restore refused or failed; ``problems`` are one sentence each."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class BackupReport:
    directory: Path
    files: int
    bytes: int


# --- helpers ---------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(CHUNK):
            digest.update(piece)
    return digest.hexdigest()


def _files_under(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _fresh_directory(path: Path) -> None:
    """Create ``path`` (0700) or accept it empty; refuse anything in it."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{path} is not an empty folder; back up into a new one")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    partial.chmod(0o600)
    os.replace(partial, path)


def _vault_folder() -> Path | None:
    """The vault's local folder; None when the vault is an object store (back it up there)."""
    storage = storages["vault"]
    if isinstance(storage, FileSystemStorage):
        return Path(storage.location)
    return None


def _key_paths() -> set[Path]:
    paths = {
        settings.SAFECHAT_MASTER_KEY_FILE,
        settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE,
        getattr(settings, "SAFECHAT_PKCS11_PIN_FILE", ""),
    }
    anchors = anchor_file_path()
    found = {Path(p).resolve() for p in paths if p}
    if anchors is not None:
        found.add(anchors.resolve())
    return found


def _vendor() -> str:
    return str(connection.vendor)


def _pg_env() -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments and environment for the default database (the
    password only in the child's environment, never on its command line)."""
    db = connection.settings_dict
    args = ["--dbname", str(db["NAME"])]
    if db.get("HOST"):
        args += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    options = db.get("OPTIONS") or {}
    for option in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if options.get(option):
            env[f"PG{option.upper()}"] = str(options[option])  # libpq's own variables
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    # The PostgreSQL client tools, found on PATH, with the connection's own settings.
    result = subprocess.run(  # noqa: S603
        command, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackupError(f"{Path(command[0]).name} failed: {last}")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (PostgreSQL's client tools)")
    return found


# --- what the manifest records ---------------------------------------------------------------


def _key_probes() -> list[dict[str, Any]]:
    """One wrapped key per master-key version in use (ciphertext, as the database holds it)."""
    probes: dict[int, dict[str, Any]] = {}
    for label, (model, field, _) in _WRAPPED.items():
        for version in model.objects.values_list("kek_version", flat=True).distinct():
            if version in probes:
                continue
            row = model.objects.filter(kek_version=version).order_by("pk").first()
            probes[version] = {
                "version": version,
                "kind": label,
                "id": row.pk,
                "user_id": getattr(row, "user_id", None),
                "wrapped": base64.b64encode(bytes(getattr(row, field))).decode("ascii"),
            }
    return [probes[v] for v in sorted(probes)]


def _audit_state() -> dict[str, Any]:
    head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
    checkpoint = AuditCheckpoint.objects.order_by("-seq").values("seq", "key_id").first()
    return {
        "head_seq": head["seq"] if head else 0,
        "head_hash": head["hash"] if head else "",
        "checkpoint_seq": checkpoint["seq"] if checkpoint else 0,
        "checkpoint_key_id": checkpoint["key_id"] if checkpoint else "",
        "checkpoint_key_ids": sorted(set(AuditCheckpoint.objects.values_list("key_id", flat=True))),
    }


def _migrations() -> list[list[str]]:
    recorder = MigrationRecorder(connection)
    return sorted([app, name] for app, name in recorder.applied_migrations())


# --- backup ----------------------------------------------------------------------------------


def backup_create(*, to: Path) -> BackupReport:
    """Write a data backup (database, vault blobs, manifest) into the new folder ``to``.

    Guarantees: no key material (master key, audit signing key, anchor file, PIN) and no
    plaintext content is written; the manifest is written last, so a folder without one
    is an unfinished backup. PostgreSQL's dump is one consistent snapshot
    (``pg_dump``'s); SQLite's is the online backup API's. Blobs are copied after the
    database: a blob uploaded meanwhile may be in the copy without its row (harmless); a
    blob deleted meanwhile (a deletion, a retention run) is missing beside its row, so run
    backups outside the retention job's window. Raises :class:`BackupError`.
    """
    _fresh_directory(to)
    vendor = _vendor()
    if vendor == "postgresql":
        args, env = _pg_env()
        _run([_tool("pg_dump"), "--format=custom", "--file", str(to / PG_DUMP), *args], env)
    elif vendor == "sqlite":
        connection.ensure_connection()
        target = sqlite3.connect(to / SQLITE_COPY)
        try:
            connection.connection.backup(target)
        finally:
            target.close()
    else:
        raise BackupError(f"no backup for the {vendor} database engine")
    vault = _vault_folder()
    keys = _key_paths()
    if vault is not None and vault.exists():
        for source in _files_under(vault):
            if source.resolve() in keys:
                raise BackupError(f"{source} is key material inside the vault folder; move it")
            target_path = to / VAULT / source.relative_to(vault)
            target_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(source, target_path)
        for folder in [to / VAULT, *(p for p in (to / VAULT).rglob("*") if p.is_dir())]:
            if folder.exists():
                folder.chmod(0o700)
    files = {}
    total = 0
    for path in _files_under(to):
        path.chmod(0o600)
        size = path.stat().st_size
        total += size
        files[path.relative_to(to).as_posix()] = {"sha256": _sha256(path), "bytes": size}
    probes = _key_probes()
    manifest = {
        "format": DATA_FORMAT,
        "created_at": timezone.now().isoformat(),
        "database": {"engine": vendor, "file": PG_DUMP if vendor == "postgresql" else SQLITE_COPY},
        "vault": "local" if vault is not None else "object-store (not in this backup)",
        "migrations": _migrations(),
        "master_key": {
            "current_version": get_provider().current_version,
            "versions_in_use": [p["version"] for p in probes],
            "probes": probes,
        },
        "audit": {**_audit_state(), "anchor_database": database_identity()},
        "files": files,
    }
    _write_json(to / MANIFEST, manifest)
    return BackupReport(directory=to, files=len(files), bytes=total)


def keys_backup_create(*, to: Path) -> BackupReport:
    """Write the key material into the new folder ``to`` (0700, files 0600), apart from the
    data backup: the master key file (or ``SAFECHAT_MASTER_KEYS``' value; with PKCS#11 only
    a reference to the token: library, token label and key label prefix, never the PIN),
    the audit signing key, the retired audit public keys, and the anchor file.
    Raises :class:`BackupError` when a configured key file cannot be read."""
    _fresh_directory(to)
    env = settings_env()
    written: dict[str, dict[str, Any]] = {}

    def put(name: str, data: bytes) -> None:
        path = to / name
        path.write_bytes(data)
        path.chmod(0o600)
        written[name] = {"sha256": _sha256(path), "bytes": len(data)}

    def copy(name: str, source: str) -> None:
        try:
            put(name, Path(source).read_bytes())
        except OSError as exc:
            raise BackupError(f"cannot read {source}: {exc.strerror}") from None

    if env["SAFECHAT_KEY_PROVIDER"] == "pkcs11":
        reference = {
            "provider": "pkcs11",
            "library": env.get("SAFECHAT_PKCS11_LIBRARY", ""),
            "token_label": env.get("SAFECHAT_PKCS11_TOKEN_LABEL", ""),
            "key_label_prefix": env.get("SAFECHAT_PKCS11_KEY_LABEL_PREFIX", ""),
            "versions": list(get_provider().versions),
        }
        put("hsm-reference.json", (json.dumps(reference, indent=2) + "\n").encode())
    elif env.get("SAFECHAT_MASTER_KEYS"):
        put("master-keys.env", (env["SAFECHAT_MASTER_KEYS"] + "\n").encode())
    elif env.get("SAFECHAT_MASTER_KEY_FILE"):
        copy("master-keys.json", env["SAFECHAT_MASTER_KEY_FILE"])
    if settings.SAFECHAT_AUDIT_SIGNING_KEY:
        put("audit-signing.key", (settings.SAFECHAT_AUDIT_SIGNING_KEY + "\n").encode())
    elif settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE:
        copy("audit-signing.key", settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE)
    if settings.SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS:
        previous = list(settings.SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS)
        put("audit-previous-public-keys.json", (json.dumps(previous) + "\n").encode())
    anchors = anchor_file_path()
    if anchors is not None and anchors.exists():
        copy("audit-anchors.jsonl", str(anchors))
    _write_json(
        to / KEYS_MANIFEST,
        {"format": KEYS_FORMAT, "created_at": timezone.now().isoformat(), "files": written},
    )
    return BackupReport(
        directory=to, files=len(written), bytes=sum(f["bytes"] for f in written.values())
    )


# --- restore ---------------------------------------------------------------------------------


def manifest_verify(source: Path) -> dict[str, Any]:
    """The manifest of the data backup in ``source``, once every file in the folder matches
    it (SHA-256, none missing, none added). Raises :class:`BackupError` naming each file."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} holds no {MANIFEST}: not a finished backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source / MANIFEST} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != DATA_FORMAT:
        raise BackupError(f"{source / MANIFEST} is not a SafeChat data backup's manifest")
    listed: dict[str, Any] = manifest.get("files") or {}
    present = {p.relative_to(source).as_posix() for p in _files_under(source)} - {MANIFEST}
    problems = [f"{name} is missing" for name in sorted(set(listed) - present)]
    problems += [f"{name} is not in the manifest" for name in sorted(present - set(listed))]
    for name in sorted(set(listed) & present):
        if _sha256(source / name) != listed[name].get("sha256"):
            problems.append(f"{name} does not match its SHA-256 in the manifest")
    if problems:
        raise BackupError([f"the backup does not verify: {p}" for p in problems])
    return manifest


def _migration_problems(manifest: dict[str, Any]) -> list[str]:
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    unknown = [f"{app}.{name}" for app, name in manifest["migrations"] if (app, name) not in known]
    if unknown:
        return [
            f"the backup's schema has migrations this release does not know "
            f"({', '.join(unknown[:5])}{', …' if len(unknown) > 5 else ''}): restore it with "
            "the release that made it"
        ]
    return []


def key_problems(manifest: dict[str, Any]) -> list[str]:
    """Which key material the backup needs that is not configured here, one sentence each:
    a master-key version that is missing or does not open the backup's wrapped keys, the
    audit signing key (or retired public key) that signed its checkpoints, the anchor file.
    Reads keys; writes nothing (a missing key file is not created)."""
    problems: list[str] = []
    env = settings_env()
    key_file = env.get("SAFECHAT_MASTER_KEY_FILE", "")
    probes = manifest["master_key"]["probes"]
    local = env["SAFECHAT_KEY_PROVIDER"] == "local"
    if probes and local and key_file and not Path(key_file).exists():
        problems.append(
            f"the master key file {key_file} does not exist: put the key backup's "
            f"master-keys.json there (master-key versions needed: {_versions(probes)})"
        )
    elif probes:
        reset_provider()
        try:
            provider = get_provider()
            for probe in probes:
                aad = (
                    user_private_key_aad(probe["user_id"])
                    if probe["kind"] == "user"
                    else bytes(_WRAPPED[probe["kind"]][2](probe["id"]))
                )
                try:
                    provider.unwrap(base64.b64decode(probe["wrapped"]), aad=aad)
                except UnknownKeyVersion:
                    problems.append(
                        f"master-key version {probe['version']} is missing from the master "
                        f"keys configured here (versions held: {_versions_held(provider)})"
                    )
                except DecryptionError:
                    problems.append(
                        f"master-key version {probe['version']} configured here is another "
                        "key than the one this backup's keys are wrapped with"
                    )
        except CryptoError as exc:
            problems.append(f"master key: {exc}")
    needed = set(manifest["audit"].get("checkpoint_key_ids") or [])
    signing_file = settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE
    inline = settings.SAFECHAT_AUDIT_SIGNING_KEY
    if needed and not inline and signing_file and not Path(signing_file).exists():
        problems.append(
            f"the audit signing key file {signing_file} does not exist: put the key "
            "backup's audit-signing.key there"
        )
        needed = set()  # not created here: a refused restore writes nothing
    if needed:
        try:
            missing = needed - set(trusted_public_keys())
        except (ImproperlyConfigured, ValueError) as exc:
            problems.append(f"audit signing key: {exc}")
        else:
            if missing:
                problems.append(
                    "the audit signing key that signed this backup's checkpoints (key id "
                    f"{', '.join(sorted(missing))}) is missing: configure it, or its public key "
                    "in SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS"
                )
    anchors = anchor_file_path()
    anchored = bool(anchors and anchors.exists() and anchors.stat().st_size)
    if manifest["audit"].get("checkpoint_key_ids") and anchors is not None and not anchored:
        problems.append(
            f"the audit anchor file {anchors} is missing or empty: put the key backup's "
            "audit-anchors.jsonl there"
        )
    return problems


def _versions(probes: list[dict[str, Any]]) -> str:
    return ", ".join(str(p["version"]) for p in probes)


def _versions_held(provider: Any) -> str:
    return ", ".join(str(v) for v in provider.versions) or "none"


def _target_problems(vendor: str) -> list[str]:
    problems = []
    tables = connection.introspection.table_names()
    if tables:
        problems.append(
            f"the database already has {len(tables)} table(s): restore into an empty "
            "database, or pass --force to replace it"
        )
    vault = _vault_folder()
    if vault is not None and vault.exists() and any(_files_under(vault)):
        problems.append(
            f"the vault folder {vault} is not empty: restore into an empty data folder, or "
            "pass --force to replace it"
        )
    return problems


def _database_clear() -> None:
    """Drop every table (PostgreSQL: the public schema's objects) of the default database."""
    if _vendor() == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute("CREATE SCHEMA public")
        return
    connection.close()
    path = Path(connection.settings_dict["NAME"])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# Where a forced restore keeps the database it replaces until the new one has proved
# itself (PostgreSQL: a schema of that name; SQLite: the file with that suffix).
REPLACED = "safechat_replaced"


def _database_set_aside() -> None:
    """Move the default database's content out of the way, intact, so that a forced restore
    that fails can put it back (:func:`_database_put_back`): PostgreSQL renames the public
    schema (one statement each, committed: ``pg_restore`` runs in its own session);
    SQLite renames the file and its WAL."""
    if _vendor() == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {REPLACED} CASCADE")
            cursor.execute(f"ALTER SCHEMA public RENAME TO {REPLACED}")
            cursor.execute("CREATE SCHEMA public")
        return
    connection.close()
    path = Path(connection.settings_dict["NAME"])
    for suffix in ("", "-wal", "-shm"):
        current = Path(f"{path}{suffix}")
        if current.exists():
            os.replace(current, Path(f"{path}.{REPLACED}{suffix}"))


def _database_put_back() -> None:
    """Drop what a failed restore wrote and put the set-aside database back in place."""
    _database_clear()
    if _vendor() == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute(f"ALTER SCHEMA {REPLACED} RENAME TO public")
        return
    path = Path(connection.settings_dict["NAME"])
    for suffix in ("", "-wal", "-shm"):
        aside = Path(f"{path}.{REPLACED}{suffix}")
        if aside.exists():
            os.replace(aside, Path(f"{path}{suffix}"))


def _database_discard_set_aside() -> None:
    """The restore proved itself: the set-aside database goes."""
    if _vendor() == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {REPLACED} CASCADE")
        return
    path = Path(connection.settings_dict["NAME"])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}.{REPLACED}{suffix}").unlink(missing_ok=True)


def _database_restore(source: Path, manifest: dict[str, Any]) -> None:
    engine = manifest["database"]["engine"]
    if engine == "postgresql":
        args, env = _pg_env()
        connection.close()
        _run(
            [
                _tool("pg_restore"),
                "--single-transaction",
                "--no-owner",
                "--exit-on-error",
                *args,
                str(source / PG_DUMP),
            ],
            env,
        )
        return
    path = Path(connection.settings_dict["NAME"])
    connection.close()
    partial = path.with_name(path.name + ".restoring")
    partial.unlink(missing_ok=True)
    backup = sqlite3.connect(source / SQLITE_COPY)
    target = sqlite3.connect(partial)
    try:
        backup.backup(target)
    except sqlite3.DatabaseError as exc:
        target.close()
        partial.unlink(missing_ok=True)
        raise BackupError(f"the backup's {SQLITE_COPY} cannot be loaded: {exc}") from None
    finally:
        target.close()
        backup.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(partial, path)


def _epoch_problems() -> list[str]:
    """Open one live epoch key per room through a member's sealed copy (no audit event:
    a member's copy, not the compliance key); one sentence per room that fails."""
    clear_key_caches()
    problems = []
    room_ids = RoomEpoch.objects.filter(shredded_at__isnull=True).values_list("room_id", flat=True)
    for room_id in sorted(set(room_ids)):
        copy = (
            SealedEpochKey.objects.filter(
                epoch__room_id=room_id, epoch__shredded_at__isnull=True, user__isnull=False
            )
            .select_related("epoch")
            .order_by("-epoch__number")
            .first()
        )
        if copy is None or copy.user_id is None:
            continue
        try:
            room_epoch_key_for(room_id=room_id, number=copy.epoch.number, user_id=copy.user_id)
        except Exception as exc:  # any failure here means the keys do not open the data
            number = copy.epoch.number
            problems.append(f"room {room_id}: its epoch {number} key does not open ({exc})")
    clear_key_caches()
    return problems


def restore_run(*, source: Path, force: bool = False) -> dict[str, Any]:
    """Restore the data backup in ``source`` into the configured database and vault folder.

    Before anything is written: the manifest and every file verify (:func:`manifest_verify`),
    the migrations are known here, the engines match, the key material configured here
    opens the backup (:func:`key_problems`), and the target is empty (any table or blob
    refuses unless ``force``, which replaces them: the database replaced is set aside,
    intact, until the restored one has opened its keys, and put back if anything fails).
    PostgreSQL is restored in one
    transaction (``pg_restore --single-transaction``); SQLite into a side file renamed
    into place; the vault is copied into a side folder renamed into place last. After
    writing, one epoch key per room is opened through a member's copy; on failure what
    was written is removed. Last, ``backup.restored`` is appended to the restored audit
    chain. Returns the manifest. Raises :class:`BackupError`.
    """
    manifest = manifest_verify(source)
    vendor = _vendor()
    engine = manifest["database"]["engine"]
    if engine != vendor:
        raise BackupError(f"the backup is of a {engine} database; this installation uses {vendor}")
    problems = _migration_problems(manifest) + key_problems(manifest)
    if problems:
        raise BackupError(problems)
    if not force:
        problems = _target_problems(vendor)
        if problems:
            raise BackupError(problems)
    vault = _vault_folder()
    staged: Path | None = None
    if (source / VAULT).exists():
        if vault is None:
            raise BackupError("the backup holds vault blobs but the vault here is an object store")
        vault.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = Path(tempfile.mkdtemp(prefix=".vault-restoring-", dir=vault.parent))
        shutil.copytree(source / VAULT, staged, dirs_exist_ok=True)
    set_aside = bool(force and connection.introspection.table_names())
    try:
        if set_aside:
            _database_set_aside()
        _database_restore(source, manifest)
    except BaseException:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        if set_aside:
            _database_put_back()
        raise
    old_vault: Path | None = None
    if staged is not None and vault is not None:
        if vault.exists():
            old_vault = vault.with_name(vault.name + ".replaced")
            shutil.rmtree(old_vault, ignore_errors=True)
            os.replace(vault, old_vault)
        os.replace(staged, vault)
    for alias in connections:
        connections[alias].close()
    problems = _epoch_problems()
    if problems:
        if set_aside:
            _database_put_back()
        else:
            _database_clear()
        if staged is not None and vault is not None:
            shutil.rmtree(vault, ignore_errors=True)
            if old_vault is not None:
                os.replace(old_vault, vault)
        raise BackupError(problems)
    if old_vault is not None:
        shutil.rmtree(old_vault, ignore_errors=True)
    if set_aside:
        _database_discard_set_aside()
    with transaction.atomic():
        audit_record(
            actor=BACKUP_SYSTEM,
            action=AuditAction.BACKUP_RESTORED,
            extra={
                "backup_created_at": str(manifest["created_at"]),
                "backup_head_seq": int(manifest["audit"]["head_seq"]),
                "forced": force,
            },
        )
    return manifest
