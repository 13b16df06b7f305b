"""A clamd of the tests' own: a unix socket in a temporary folder, a tiny signature database.

No signature download is possible (or wanted) in tests: the database holds one MD5
signature, the standard EICAR test file's, computed here from the string built in parts
so that no file of the repository is itself flagged by a scanner.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

EICAR_SIGNATURE_NAME = "SafeChat.Test.EICAR"


def eicar() -> bytes:
    """The 68-byte EICAR anti-virus test file, assembled from parts."""
    parts = (
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!",
        "$H+H*",
    )
    return "".join(parts).encode("ascii")


class OwnClamd:
    """Start with ``start()``, stop with ``stop()``; ``socket_path`` is where it listens."""

    def __init__(self) -> None:
        # Unix socket paths are limited to ~107 bytes: a short folder of its own.
        self.workdir = Path(tempfile.mkdtemp(prefix="clamd-"))
        self.socket_path = str(self.workdir / "clamd.sock")
        # clamd spools INSTREAM data to its temporary folder: keep it in memory (tmpfs).
        shm = Path("/dev/shm")  # noqa: S108 - mkdtemp below makes a private 0700 folder
        base = shm if shm.is_dir() else self.workdir
        self.spool = Path(tempfile.mkdtemp(prefix="clamd-spool-", dir=base))
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        database = self.workdir / "db"
        database.mkdir()
        sample = eicar()
        line = f"{hashlib.md5(sample).hexdigest()}:{len(sample)}:{EICAR_SIGNATURE_NAME}\n"  # noqa: S324 - ClamAV's hash signature format
        (database / "safechat-test.hdb").write_text(line)
        config = self.workdir / "clamd.conf"
        config.write_text(
            "\n".join(
                [
                    "Foreground yes",
                    f"LocalSocket {self.socket_path}",
                    "LocalSocketMode 600",
                    f"DatabaseDirectory {database}",
                    f"TemporaryDirectory {self.spool}",
                    f"PidFile {self.workdir / 'clamd.pid'}",
                    "StreamMaxLength 512M",
                    "MaxFileSize 512M",
                    "MaxScanSize 512M",
                    "LogSyslog no",
                    "Bytecode no",
                    "",
                ]
            )
        )
        return config

    def start(self) -> None:
        binary = shutil.which("clamd") or (
            "/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None
        )
        if binary is None:
            raise RuntimeError("clamd is needed (Debian: apt-get install clamav-daemon)")
        config = self._write_config()
        self.process = subprocess.Popen(
            [binary, "--config-file", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the tests' clamd exited while starting")
            if self.ping():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the tests' clamd did not answer PING")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(self.socket_path)
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.spool, ignore_errors=True)
