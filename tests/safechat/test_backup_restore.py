"""The restore drill: a populated installation is backed up (data and keys apart) and
restored into an empty one, where the audit log verifies and everything decrypts; a
tampered backup, missing keys and a non-empty target are refused with nothing written.

Each installation is its own processes, data folder and database (on PostgreSQL,
scratch databases beside the test database; on SQLite, a file in the data folder).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.support.fixtures import PROJECT_ROOT, project_env

MARKER = "ZQX-backup-drill-7Q4"
KEY_FILES = ("master-keys.json", "audit-signing.key", "audit-anchors.jsonl")


def _postgres() -> bool:
    return bool(connection.settings_dict["ENGINE"] == "django.db.backends.postgresql")


def _admin_sql(statement: str) -> None:
    """Run ``statement`` on the server of the test database, outside any transaction."""
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(statement)


@dataclass
class Installation:
    env: dict[str, str]
    data_dir: Path
    database: str  # a PostgreSQL database's name, or "" on SQLite

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip

    def run(self, code: str) -> Any:
        result = self.manage("shell", "-v", "0", "-c", code)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def tables(self) -> list[str]:
        listed = self.run(
            "import json; from django.db import connection; "
            "print(json.dumps(connection.introspection.table_names()))"
        )
        return list(listed)

    def drop(self) -> None:
        if self.database:
            _admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def installation(folder: Path, name: str) -> Installation:
    """An empty installation: its own data folder and (on PostgreSQL) its own database."""
    data_dir = folder / name
    data_dir.mkdir(parents=True, mode=0o700)
    env = project_env(folder, SAFECHAT_DATA_DIR=str(data_dir), SAFECHAT_RETENTION_MINIMUM_DAYS="1")
    database = ""
    if _postgres():
        db = connection.settings_dict
        database = f"{db['NAME']}_{name}"[:63]
        _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _admin_sql(f'CREATE DATABASE "{database}"')
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        env["DATABASE_URL"] = f"postgres://{db['USER']}{password}@{host}/{database}"
    return Installation(env=env, data_dir=data_dir, database=database)


@dataclass
class Backed:
    source: Installation
    data: Path
    keys: Path
    populated: dict[str, Any]


@pytest.fixture(scope="module")
def backed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backed]:
    """A populated installation (users, rooms, messages, a file, a retention shred, a signed
    and anchored audit checkpoint), backed up: data and keys into separate folders."""
    folder = tmp_path_factory.mktemp("drill")
    source = installation(folder, "src")
    try:
        migrated = source.manage("migrate", "--noinput", "-v", "0")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        populated = source.run(
            f"from tests.support.backup_drill import populate; populate({MARKER!r})"
        )
        data, keys = folder / "backup-data", folder / "backup-keys"
        made = source.manage("backup", "--to", str(data))
        assert made.returncode == 0, made.stderr[-3000:]
        made = source.manage("backup", "--keys-to", str(keys))
        assert made.returncode == 0, made.stderr[-3000:]
        yield Backed(source=source, data=data, keys=keys, populated=populated)
    finally:
        source.drop()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Installation]:
    """An empty installation to restore into (no migrate: an empty database)."""
    empty = installation(tmp_path, "dst")
    yield empty
    empty.drop()


def keys_in_place(backed: Backed, target: Installation) -> None:
    for name in KEY_FILES:
        shutil.copy2(backed.keys / name, target.data_dir / name)


def backup_texts(folder: Path) -> list[tuple[str, bytes]]:
    """Every file of a backup as bytes; a PostgreSQL dump also as the SQL it restores."""
    texts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        texts.append((path.name, path.read_bytes()))
        if path.name == "database.pgdump":
            sql = subprocess.run(
                ["pg_restore", "--file", "-", str(path)], capture_output=True, check=True
            )  # fmt: skip
            texts.append(("database.pgdump as SQL", sql.stdout))
    return texts


def test_the_drill_restores_an_installation_whose_audit_verifies_and_content_decrypts(
    backed: Backed, target: Installation
) -> None:
    # given the key backup's files put in place in an empty installation
    keys_in_place(backed, target)

    # when the data backup is restored
    restored = target.manage("restore", "--from", str(backed.data))

    # then it succeeds, and the audit log verifies, its anchor checked against the
    # backed-up database's lines
    assert restored.returncode == 0, restored.stderr[-3000:]
    manifest = json.loads((backed.data / "manifest.json").read_text())
    anchored_as = manifest["audit"]["anchor_database"]
    assert f"--anchor-database '{anchored_as}'" in restored.stdout
    verified = target.manage("verify_audit", "--anchor-database", anchored_as)
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert "audit log intact" in verified.stdout
    assert "1 checkpoints, 1 anchors verified" in verified.stdout
    # and the restore is itself in the restored chain, after the backup's head
    restored_events = target.run(
        "import json; from audit.models import AuditEvent; print(json.dumps(list("
        "AuditEvent.objects.filter(action='backup.restored').values_list('seq', 'extra'))))"
    )
    head_seq = manifest["audit"]["head_seq"]
    assert restored_events == [
        [head_seq + 1, {
            "backup_created_at": manifest["created_at"], "backup_head_seq": head_seq,
            "forced": False,
        }]
    ]  # fmt: skip
    # and every message and file decrypts as before; the shredded epoch's message is gone
    contents = target.run("from tests.support.backup_drill import contents; contents()")
    assert contents["messages"] == backed.populated["messages"]
    assert contents["files"] == backed.populated["files"]
    assert backed.populated["shredded_epochs"] == 1
    assert sorted(contents["messages"].values()) == [
        f"{MARKER} elsewhere",
        f"{MARKER} kept",
        f"{MARKER} reply",
    ]
    assert len(contents["files"]) == 1

    # and restoring again over it is refused unless forced
    again = target.manage("restore", "--from", str(backed.data))
    assert again.returncode != 0
    assert "the database already has" in again.stderr
    assert "--force" in again.stderr
    forced = target.manage("restore", "--from", str(backed.data), "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert target.run("from tests.support.backup_drill import contents; contents()") == contents


def test_the_data_backup_holds_no_key_material_and_no_plaintext(backed: Backed) -> None:
    # given the data backup and the key material of the installation it was made of
    secrets = [(backed.keys / name).read_bytes().strip() for name in KEY_FILES[:2]]
    master_keys = json.loads(secrets[0])
    key_values = [str(v).encode() for v in _leaves(master_keys) if len(str(v)) >= 32]
    assert key_values

    # when every file of the data backup is read (a PostgreSQL dump also as SQL)
    texts = backup_texts(backed.data)

    # then no key and no message or file text is in any of them
    assert {name for name, _ in texts}.isdisjoint(KEY_FILES)
    for name, data in texts:
        assert MARKER.encode() not in data, name
        assert secrets[1] not in data, name
        for value in key_values:
            assert value not in data, name
    # and the key backup is apart: it holds the keys, no database and no blob
    expected = sorted([*KEY_FILES, "keys-manifest.json"])
    assert sorted(p.name for p in backed.keys.iterdir()) == expected


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def assert_nothing_restored(target: Installation) -> None:
    assert target.tables() == []
    vault = target.data_dir / "vault"
    assert not vault.exists() or not any(p.is_file() for p in vault.rglob("*"))
    assert not any(target.data_dir.glob(".vault-restoring-*"))


def test_a_tampered_backup_is_refused_and_nothing_is_written(
    backed: Backed, target: Installation, tmp_path: Path
) -> None:
    # given a copy of the backup with one byte of a vault blob changed
    tampered = tmp_path / "tampered"
    shutil.copytree(backed.data, tampered)
    [blob] = [p for p in (tampered / "vault").rglob("*") if p.is_file()]
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    keys_in_place(backed, target)

    # when it is restored
    refused = target.manage("restore", "--from", str(tampered))

    # then it is refused, naming the file, and nothing is written
    assert refused.returncode != 0
    name = blob.relative_to(tampered).as_posix()
    assert f"{name} does not match its SHA-256 in the manifest" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert_nothing_restored(target)


def test_a_file_added_to_the_backup_is_refused(
    backed: Backed, target: Installation, tmp_path: Path
) -> None:
    # given a copy of the backup with a file the manifest does not list
    added = tmp_path / "added"
    shutil.copytree(backed.data, added)
    (added / "vault" / "extra").write_bytes(b"planted")
    keys_in_place(backed, target)

    # when it is restored
    refused = target.manage("restore", "--from", str(added))

    # then it is refused and nothing is written
    assert refused.returncode != 0
    assert "vault/extra is not in the manifest" in refused.stderr
    assert_nothing_restored(target)


def test_restoring_without_the_keys_is_refused_naming_each_missing_key(
    backed: Backed, target: Installation
) -> None:
    # given an empty installation without the key backup's files

    # when the data backup is restored
    refused = target.manage("restore", "--from", str(backed.data))

    # then it is refused, naming each missing key, and nothing is written (no key created)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "master key file" in refused.stderr
    assert "master-key versions needed: 1" in refused.stderr
    assert "audit signing key file" in refused.stderr
    assert "audit anchor file" in refused.stderr
    assert_nothing_restored(target)
    assert not any((target.data_dir / name).exists() for name in KEY_FILES[:2])


def test_restoring_with_another_master_key_is_refused(backed: Backed, target: Installation) -> None:
    # given the audit keys in place but a master key file of another installation
    keys_in_place(backed, target)
    made = target.manage("shell", "-v", "0", "-c", "print(1)")  # settings only
    assert made.returncode == 0
    (target.data_dir / "master-keys.json").unlink()
    other = target.manage(
        "shell", "-v", "0", "-c",
        "from safechat.keyring.provider import get_provider; get_provider()",
    )  # fmt: skip
    assert other.returncode == 0, other.stderr[-2000:]

    # when the data backup is restored
    refused = target.manage("restore", "--from", str(backed.data))

    # then it is refused: version 1 here is another key
    assert refused.returncode != 0
    assert "master-key version 1 configured here is another key" in refused.stderr
    assert_nothing_restored(target)


def test_a_forced_restore_that_fails_to_load_puts_the_replaced_database_back(
    backed: Backed, target: Installation, tmp_path: Path
) -> None:
    # given an installation in use (migrated, one person in it)
    migrated = target.manage("migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    people = target.run(
        "import json; from tests.accounts.factories import make_user; "
        "make_user(username='stays'); from accounts.models import User; "
        "print(json.dumps(sorted(User.objects.values_list('username', flat=True))))"
    )
    tables = target.tables()
    # and a backup whose database file cannot be loaded, its manifest rewritten to match
    # (what the manifest's hashes cannot tell from a sound copy)
    broken = tmp_path / "broken"
    shutil.copytree(backed.data, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    [name] = [n for n in manifest["files"] if n.startswith("database.")]
    (broken / name).write_bytes(b"not a database" * 100)
    manifest["files"][name]["sha256"] = hashlib.sha256((broken / name).read_bytes()).hexdigest()
    manifest["files"][name]["bytes"] = (broken / name).stat().st_size
    (broken / "manifest.json").write_text(json.dumps(manifest))
    keys_in_place(backed, target)

    # when it is restored over the installation, forced
    failed = target.manage("restore", "--from", str(broken), "--force")

    # then the restore fails, and the installation's database is the one it had, whole
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert target.tables() == tables
    after = target.run(
        "import json; from accounts.models import User; "
        "print(json.dumps(sorted(User.objects.values_list('username', flat=True))))"
    )
    assert after == people
    assert not any(target.data_dir.glob(".vault-restoring-*"))
