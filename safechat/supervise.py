"""Run the whole product in the foreground: web server, Celery worker and beat, and
clamd (the file vault's malware scanner) when asked.

``make run`` calls this. Ctrl-C (or SIGTERM) stops them all together; if one exits on
its own, the others are stopped too, so nothing half-runs unnoticed. If the runner itself
dies without a chance to clean up (SIGKILL, the OOM killer), the kernel stops its
children: each is started with Linux's parent-death signal (``PR_SET_PDEATHSIG``, set
through ``billiard.util.set_pdeathsig``, the call Celery's own pool uses for its worker
processes), so it receives SIGTERM the moment the runner is gone, and Celery's pool
processes in turn die with the worker. No user-space supervisor (``honcho`` included)
can do this for itself: a process killed with SIGKILL runs no clean-up code.

``make run CLAMD=1`` (``SAFECHAT_RUN_CLAMD=1``) also runs Debian's ``/usr/sbin/clamd``
in the foreground with a configuration written under ``<data dir>/clamd/``: its socket
there (or at ``SAFECHAT_CLAMD_SOCKET`` if set, which the web and worker then use), its
signatures from ``SAFECHAT_CLAMD_DATABASE_DIR`` (default ``/var/lib/clamav``, where
``freshclam`` keeps them), and its temporary folder (clamd spools each scanned stream
there) in a private folder on the ``/dev/shm`` tmpfs. Without signatures clamd cannot
start: the supervisor says so and runs without it, and uploaded files stay "pending
scan", invisible, until a scanner is configured (docs/files.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import FrameType

from billiard.util import set_pdeathsig  # type: ignore[attr-defined]  # celery-types omits it

from safechat.websocket_limits import WEBSOCKET_MAX_FRAME_BYTES

STOP_GRACE_SECONDS = 10

# Options every SafeChat web server runs with (deploy/systemd/safechat-web.service too).
# No permessage-deflate: compressing secrets beside text an attacker can put into the
# same stream lets frame sizes leak them (CRIME/BREACH), and it costs CPU per recipient.
# Frames carry at most a 16 KiB message; 64 KiB leaves room for JSON escaping. A frame
# past it closes the socket (1009): the chat client measures its frames against it first
# (safechat.websocket_limits).
UVICORN_WEBSOCKET_OPTIONS = [
    "--ws-per-message-deflate",
    "false",
    "--ws-max-size",
    str(WEBSOCKET_MAX_FRAME_BYTES),
]


def commands(port: str, host: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [
            python, "-m", "uvicorn", "safechat.asgi:application",
            "--host", host, "--port", port, "--no-server-header",
            "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--loop", "asyncio",
            *UVICORN_WEBSOCKET_OPTIONS,
        ],
        "worker": [
            python, "-m", "celery", "-A", "safechat.celery", "worker",
            "--loglevel", "INFO", "--concurrency", "2", "--without-mingle", "--without-gossip",
        ],
        "beat": [python, "-m", "celery", "-A", "safechat.celery", "beat", "--loglevel", "INFO"],
    }  # fmt: skip


CLAMD_BINARY = "/usr/sbin/clamd"
DEFAULT_CLAMD_DATABASE_DIR = "/var/lib/clamav"
# ClamAV's signature files: the official databases and any local ones.
SIGNATURE_SUFFIXES = (".cvd", ".cld", ".cud", ".hdb", ".hsb", ".ndb", ".ldb", ".cdb", ".yar")


def has_signatures(database_dir: Path) -> bool:
    """Whether ``database_dir`` holds any ClamAV signature file."""
    return database_dir.is_dir() and any(
        path.suffix in SIGNATURE_SUFFIXES for path in database_dir.iterdir()
    )


def clamd_config(
    *, socket_path: Path, database_dir: Path, spool_dir: Path, max_bytes: int, pid_file: Path
) -> str:
    """A clamd.conf for a foreground clamd on a unix socket (only its owner may connect).

    ``StreamMaxLength`` and the scan limits cover the largest file the vault accepts
    (``max_bytes``), or clamd would answer "size limit exceeded" and files stay pending.
    """
    limit = f"{max(max_bytes, 1) // (1024 * 1024) + 1}M"
    return "\n".join(
        [
            "Foreground yes",
            f"LocalSocket {socket_path}",
            "LocalSocketMode 600",
            f"DatabaseDirectory {database_dir}",
            f"TemporaryDirectory {spool_dir}",
            f"PidFile {pid_file}",
            f"StreamMaxLength {limit}",
            f"MaxFileSize {limit}",
            f"MaxScanSize {limit}",
            "LogSyslog no",
            "LogTime yes",
            "",
        ]
    )


def clamd_command(data_dir: Path, environ: dict[str, str]) -> tuple[list[str], str, Path] | None:
    """The clamd to run (argv, socket path, spool folder), or None, having said why, if it
    cannot run. Writes the configuration under ``data_dir/clamd`` and makes the spool
    folder (the caller removes it when clamd has stopped)."""
    binary = shutil.which("clamd") or CLAMD_BINARY
    if not Path(binary).exists():
        print(
            "clamd is not installed (Debian: apt-get install clamav-daemon); running "
            "without it: uploaded files stay 'pending scan'",
            flush=True,
        )
        return None
    database_dir = Path(environ.get("SAFECHAT_CLAMD_DATABASE_DIR", DEFAULT_CLAMD_DATABASE_DIR))
    if not has_signatures(database_dir):
        print(
            f"no ClamAV signatures in {database_dir} (run freshclam, or set "
            "SAFECHAT_CLAMD_DATABASE_DIR); running without clamd: uploaded files stay "
            "'pending scan', invisible, until a scanner is configured",
            flush=True,
        )
        return None
    folder = data_dir / "clamd"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket_path = Path(environ.get("SAFECHAT_CLAMD_SOCKET") or folder / "clamd.sock")
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp below makes a private 0700 folder
    spool = Path(tempfile.mkdtemp(prefix="safechat-clamd-", dir=shm if shm.is_dir() else folder))
    max_bytes = int(environ.get("SAFECHAT_FILE_MAX_BYTES", str(100 * 1024 * 1024)))
    config = folder / "clamd.conf"
    config.write_text(
        clamd_config(
            socket_path=socket_path,
            database_dir=database_dir,
            spool_dir=spool,
            max_bytes=max_bytes,
            pid_file=folder / "clamd.pid",
        )
    )
    return [binary, "--config-file", str(config)], str(socket_path), spool


# The signal a child receives when the runner dies: a graceful stop, as with Ctrl-C.
PARENT_DEATH_SIGNAL = signal.SIGTERM


def dies_with(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child (and the program it executes;
    the setting survives ``execve`` of a non-setuid program) receives
    :data:`PARENT_DEATH_SIGNAL` when the process ``parent_pid`` ends, however it ends.

    Runs in the forked child before ``exec``. If the parent ended before the setting
    took effect (its death would then go unsignalled), the child stops itself at once.
    Linux only: elsewhere ``set_pdeathsig`` raises ``OSError`` and ``Popen`` fails.
    """

    def arm() -> None:
        set_pdeathsig(PARENT_DEATH_SIGNAL)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), PARENT_DEATH_SIGNAL)

    return arm


def start(argv: list[str], service: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that stops when the runner stops, however it stops, with
    ``SAFECHAT_SERVICE`` set to ``service`` (its log lines say which process wrote them).

    Its own session and process group: the terminal's Ctrl-C reaches the runner alone,
    which then stops the children in order.
    """
    return subprocess.Popen(  # noqa: S603 - argv built here, never from input
        argv,
        start_new_session=True,
        preexec_fn=dies_with(os.getpid()),
        env={**os.environ, "SAFECHAT_SERVICE": service},
    )


def metrics_folder_prepare(data_dir: Path, environ: MutableMapping[str, str]) -> Path:
    """The folder where every child writes its metrics (prometheus_client's multiprocess
    mode), so that the web server's ``/metrics`` serves the worker's and beat's counts too:
    ``PROMETHEUS_MULTIPROC_DIR`` if set, else ``<data dir>/prometheus`` (then set in
    ``environ`` for the children). Its metric files (``*.db``) are removed first: counts
    start again with the product, as prometheus_client's multiprocess mode requires."""
    folder = Path(environ.get("PROMETHEUS_MULTIPROC_DIR") or data_dir / "prometheus")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in folder.glob("*.db"):
        stale.unlink()
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def main() -> int:
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    children: dict[str, subprocess.Popen[bytes]] = {}
    spool: Path | None = None
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    data_dir = Path(os.environ.get("SAFECHAT_DATA_DIR") or Path.cwd() / "var")
    metrics_folder_prepare(data_dir, os.environ)

    if os.environ.get("SAFECHAT_RUN_CLAMD", "") not in ("", "0"):
        clamd = clamd_command(data_dir, dict(os.environ))
        if clamd is not None:
            argv, socket_path, spool = clamd
            # Started first, so the web and worker see it; they use its socket.
            children["clamd"] = start(argv, "clamd")
            os.environ["SAFECHAT_CLAMD_SOCKET"] = socket_path
            print(f"clamd is starting on {socket_path}", flush=True)

    for name, argv in commands(port, host).items():
        children[name] = start(argv, name)
    print(f"SafeChat is starting on http://{host}:{port}/ (Ctrl-C stops everything)", flush=True)

    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping SafeChat", flush=True)
                exit_code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.5)

    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            child.kill()
    if spool is not None:
        shutil.rmtree(spool, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
