"""The master-key provider of a development machine: its key file is created once."""

from __future__ import annotations

from pathlib import Path

import pytest

from safechat.crypto import ConfigError
from safechat.crypto.providers import key_file_create
from safechat.keyring import provider


def test_a_key_file_created_by_another_process_first_is_used(
    master_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given another process that creates the key file between our check and our create
    def other_process_wins(path: str) -> int:
        key_file_create(path)
        raise ConfigError(f"master key file {path} already exists")

    monkeypatch.setattr(provider, "key_file_create", other_process_wins)

    # when this process starts, then it uses that file instead of failing
    assert provider.get_provider() is not None
    assert master_key_file.exists()
