"""`make run CLAMD=1`: the supervisor's clamd, configured under the data folder."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from safechat import supervise
from tests.support.clamd import EICAR_SIGNATURE_NAME, eicar


def _ping(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(path)
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except OSError:
        return False


def test_without_signatures_clamd_is_not_started_and_it_says_files_stay_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "signatures"
    empty.mkdir()

    command = supervise.clamd_command(
        tmp_path / "data", {"SAFECHAT_CLAMD_DATABASE_DIR": str(empty)}
    )

    assert command is None
    said = capsys.readouterr().out
    assert "pending scan" in said
    assert "freshclam" in said


def test_the_config_covers_the_largest_file_and_spools_to_a_private_folder(
    tmp_path: Path,
) -> None:
    config = supervise.clamd_config(
        socket_path=tmp_path / "c.sock",
        database_dir=tmp_path / "db",
        spool_dir=tmp_path / "spool",
        max_bytes=100 * 1024 * 1024,
        pid_file=tmp_path / "c.pid",
    )

    lines = config.splitlines()
    assert "Foreground yes" in lines
    assert "LocalSocketMode 600" in lines
    assert f"TemporaryDirectory {tmp_path / 'spool'}" in lines
    assert "StreamMaxLength 101M" in lines


def test_the_supervisors_clamd_starts_answers_and_stops(tmp_path: Path) -> None:
    # given a signature folder (the EICAR test signature, as freshclam would leave files)
    database = tmp_path / "db"
    database.mkdir()
    sample = eicar()
    digest = hashlib.md5(sample).hexdigest()  # noqa: S324 - ClamAV's hash signature format
    (database / "local.hdb").write_text(f"{digest}:{len(sample)}:{EICAR_SIGNATURE_NAME}\n")
    data = Path(tempfile.mkdtemp(prefix="sc-run-"))  # short: socket paths are ~107 bytes

    # when the supervisor's clamd is started from its command
    command = supervise.clamd_command(data, {"SAFECHAT_CLAMD_DATABASE_DIR": str(database)})
    assert command is not None
    argv, socket_path, spool = command
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _ping(socket_path) and time.monotonic() < deadline:
            assert process.poll() is None, "clamd exited while starting"
            time.sleep(0.1)

        # then it answers on the socket under the data folder, spooling to a tmpfs folder
        assert _ping(socket_path)
        assert socket_path == str(data / "clamd" / "clamd.sock")
        assert spool.stat().st_mode & 0o777 == 0o700
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(spool, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
