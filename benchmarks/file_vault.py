"""The file vault against plain Django, through a real server process, in the same run.

Usage: python -m benchmarks.file_vault [--quick] [--runs 3] [--size 200] [--memory-sizes 100 1024]
       [--patch-mib 32]

A uvicorn process serves the product (``benchmarks.file_vault_settings``: the product's
settings and URLs plus a baseline view). For one file size the client measures:

* the vault: a tus upload (creation, then PATCHes of 32 MiB as the portal sends them, or
  ``--patch-mib``; 0 sends the whole file in one PATCH, as tus clients do by default;
  encrypted as they stream),
  the scan a Celery worker would run (``file_scan``: decrypt, hash, clamd INSTREAM) in a
  process of its own, and the ranged-capable download (decrypt chunk by chunk);
* the baseline: a multipart upload to a Django ``forms.FileField`` saved to the default
  storage, and a ``FileResponse`` download of the stored file.

Throughput in MiB/s; "vault/plain" is their ratio. Peak RSS is the server process's
``VmHWM`` (and the scanning worker's) after one upload and download of each size, each in
a fresh server. Every figure is the median of ``--runs`` runs, with the min-max spread.
A private clamd (tests/support/clamd.py: one test signature, so clamd's cost is its
protocol and spooling, not a full signature set) does the scans.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.clamd import OwnClamd
from tests.support.servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
# The portal's PATCH size (SAFECHAT_UPLOAD_CHUNK_BYTES' default); --patch-mib changes it.
PATCH_BYTES = 32 * MIB
BLOCK = MIB
# The content starts with a plain marker: random bytes that began "MZ" would be refused
# as a program by the type policy.
MARKER = b"SafeChat benchmark data\n"


def content(size: int) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB pieces, the same every time, never held whole."""
    block = bytearray(os.urandom(BLOCK))
    block[: len(MARKER)] = MARKER
    sent = 0
    while sent < size:
        piece = bytes(block[: min(BLOCK, size - sent)])
        sent += len(piece)
        yield piece


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (``VmHWM``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far, seconds (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the environment: a data folder, a database, a clamd, a server -------------------


@dataclass
class Bench:
    data_dir: Path
    env: dict[str, str]
    clamd: OwnClamd
    token: str = ""
    room_id: int = 0
    patch_bytes: int = PATCH_BYTES
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_server(self) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "safechat.asgi:application",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
             "--no-access-log"],
            cwd=ROOT, env={**self.env, "PORT": str(port)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.servers.append(process)
        return wait_until_healthy(process, port, seconds=60), port

    def stop_server(self, process: subprocess.Popen[bytes]) -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _BigClamd(OwnClamd):
    """The tests' clamd, with limits above the largest file measured."""

    def _write_config(self) -> Path:
        config = super()._write_config()
        config.write_text(config.read_text().replace("512M", "2000M"))
        return config


def prepare(max_bytes: int) -> Bench:
    data_dir = Path(tempfile.mkdtemp(prefix="sc-bench-"))
    clamd = _BigClamd()
    clamd.start()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "benchmarks.file_vault_settings",
        "SAFECHAT_DATA_DIR": str(data_dir),
        "SAFECHAT_FILE_MAX_BYTES": str(max_bytes),
        "SAFECHAT_ROOM_FILE_QUOTA_BYTES": str(1024 * max_bytes),
        "SAFECHAT_MAX_BODY_BYTES": str(2 * max_bytes),
        "SAFECHAT_POST_RATE_LIMIT": "100000/1",
        "SAFECHAT_API_RATE_LIMIT": "1000000/1",
        "SAFECHAT_CLAMD_SOCKET": clamd.socket_path,
        # clamd answers a 1 GiB stream only once it has scanned it all.
        "SAFECHAT_CLAMD_TIMEOUT_SECONDS": "900",
    }
    if not os.environ.get("DATABASE_URL"):
        env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    bench = Bench(data_dir=data_dir, env=env, clamd=clamd)
    out = _django(env, "setup")
    bench.token, bench.room_id = str(out["token"]), int(str(out["room_id"]))
    return bench


def _django(env: dict[str, str], *args: str) -> dict[str, object]:
    """Run ``worker_main`` (below) in a fresh process with the server's settings."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.file_vault", "--worker", *args],
        cwd=ROOT, env=env, check=False, capture_output=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr.decode()[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def worker_main(args: list[str]) -> None:
    """In a process of its own: ``setup`` (a user, a room, a token) or ``scan <uid>`` (the
    worker's scan, with its time and peak memory)."""
    import django

    django.setup()
    if args[0] == "setup":
        from accounts.services.tokens import api_token_create
        from tests.accounts.factories import make_user
        from tests.rooms.factories import make_room

        owner = make_user()
        room = make_room(owner=owner)
        _row, secret = api_token_create(actor=owner, name="bench", scope="write")
        print(json.dumps({"token": secret, "room_id": room.pk}))
        return
    from files.models import StoredFile
    from files.services import file_scan

    stored = StoredFile.objects.get(uid=args[1])
    start = time.perf_counter()
    file_scan(file_id=stored.pk)
    elapsed = time.perf_counter() - start
    state = StoredFile.objects.get(pk=stored.pk).state
    print(json.dumps({"seconds": elapsed, "state": state, "rss": peak_rss_mib(os.getpid())}))


# --- the client ----------------------------------------------------------------------


def _send(
    port: int, method: str, path: str, headers: dict[str, str], body: object = None
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request(method, path, body=body, headers=headers)  # type: ignore[arg-type]
    return connection.getresponse()


def _read_all(response: http.client.HTTPResponse) -> int:
    received = 0
    while piece := response.read(BLOCK):
        received += len(piece)
    return received


def vault_upload(bench: Bench, port: int, size: int) -> str:
    """A tus upload of ``size`` bytes in ``bench.patch_bytes`` PATCHes (0: one PATCH);
    returns the file's uid."""
    from files.tus import metadata_encode

    auth = {"Authorization": f"Bearer {bench.token}", "Tus-Resumable": "1.0.0"}
    created = _send(
        port,
        "POST",
        f"/api/v1/rooms/{bench.room_id}/uploads/",
        {**auth, "Upload-Length": str(size), "Upload-Metadata": metadata_encode(
            {"filename": "bench.bin", "filetype": "application/octet-stream"})},
    )  # fmt: skip
    created.read()
    if created.status != 201:
        raise RuntimeError(f"creation: {created.status}")
    location = "/" + created.headers["Location"].split("://", 1)[1].split("/", 1)[1]
    source = content(size)
    offset = 0
    while offset < size:
        length = min(bench.patch_bytes or size, size - offset)

        def body(length: int = length) -> Iterator[bytes]:
            taken = 0
            while taken < length:
                piece = next(source)
                taken += len(piece)
                yield piece

        answer = _send(port, "PATCH", location, {
            **auth, "Upload-Offset": str(offset), "Content-Length": str(length),
            "Content-Type": "application/offset+octet-stream"}, body())  # fmt: skip
        answer.read()
        if answer.status != 204:
            raise RuntimeError(f"PATCH at {offset}: {answer.status}")
        offset += length
    return location.rsplit("/", 1)[1]


def vault_download(bench: Bench, port: int, uid: str) -> int:
    answer = _send(
        port,
        "GET",
        f"/api/v1/rooms/{bench.room_id}/files/{uid}/download",
        {"Authorization": f"Bearer {bench.token}"},
    )
    if answer.status != 200:
        raise RuntimeError(f"download: {answer.status}")
    return _read_all(answer)


def plain_upload(bench: Bench, port: int, size: int, name: str) -> None:
    boundary = "safechat-bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from content(size)
        yield tail

    answer = _send(port, "POST", "/api/bench/plain/upload", {
        "Authorization": f"Bearer {bench.token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail))}, body())  # fmt: skip
    answer.read()
    if answer.status != 201:
        raise RuntimeError(f"plain upload: {answer.status}")


def plain_download(bench: Bench, port: int, name: str) -> int:
    answer = _send(
        port, "GET", f"/api/bench/plain/download/{name}", {"Authorization": f"Bearer {bench.token}"}
    )
    if answer.status != 200:
        raise RuntimeError(f"plain download: {answer.status}")
    return _read_all(answer)


# --- the measures ----------------------------------------------------------------------


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def scan(bench: Bench, uid: str) -> dict[str, object]:
    result = _django(bench.env, "scan", uid)
    if result["state"] != "available":
        raise RuntimeError(f"scan left the file {result['state']}")
    return result


def throughput(bench: Bench, size: int, runs: int) -> tuple[dict[str, list[float]], list[float]]:
    """MiB/s of each path over ``runs`` runs, one server for all; and clamd's CPU seconds
    for each scan."""
    figures: dict[str, list[float]] = {}
    clamd_cpu: list[float] = []
    server, port = bench.start_server()
    mib = size / MIB

    def add(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(mib / seconds)

    try:
        # One round first, not counted: the server's first requests import and connect.
        # Each round's file has new random content (``content``), so clamd's cache of
        # clean files, keyed by their MD5, never answers for a scan measured here.
        warm = vault_upload(bench, port, size)
        scan(bench, warm)
        vault_download(bench, port, warm)
        plain_upload(bench, port, size, f"warm-{size}.bin")
        plain_download(bench, port, f"warm-{size}.bin")
        for run in range(runs):
            uid = ""

            def up() -> None:
                nonlocal uid
                uid = vault_upload(bench, port, size)

            upload_seconds = timed(up)
            add("vault upload", upload_seconds)
            assert bench.clamd.process is not None
            clamd_before = cpu_seconds(bench.clamd.process.pid)
            scanned = scan(bench, uid)
            scan_seconds = float(scanned["seconds"])  # type: ignore[arg-type]
            add("vault scan (worker)", scan_seconds)
            # The part of the scan that is ClamAV's own engine, in CPU time, so that a busy
            # machine does not blur whose time it is.
            clamd_cpu.append(cpu_seconds(bench.clamd.process.pid) - clamd_before)
            add("vault upload + scan", upload_seconds + scan_seconds)
            add("vault download", timed(functools.partial(vault_download, bench, port, uid)))
            name = f"plain-{size}-{run}.bin"
            add("plain upload", timed(functools.partial(plain_upload, bench, port, size, name)))
            add("plain download", timed(functools.partial(plain_download, bench, port, name)))
    finally:
        bench.stop_server(server)
    return figures, clamd_cpu


def peak_memory(bench: Bench, size: int, runs: int) -> dict[str, list[float]]:
    """Peak RSS (MiB) of a fresh server after one upload and one download of ``size``."""
    figures: dict[str, list[float]] = {}
    for run in range(runs):
        server, port = bench.start_server()
        try:
            uid = vault_upload(bench, port, size)
            scanned = scan(bench, uid)
            vault_download(bench, port, uid)
            figures.setdefault("vault server", []).append(peak_rss_mib(server.pid))
            figures.setdefault("vault scan worker", []).append(float(scanned["rss"]))  # type: ignore[arg-type]
        finally:
            bench.stop_server(server)
        server, port = bench.start_server()
        try:
            name = f"rss-{size}-{run}.bin"
            plain_upload(bench, port, size, name)
            plain_download(bench, port, name)
            figures.setdefault("plain server", []).append(peak_rss_mib(server.pid))
        finally:
            bench.stop_server(server)
    return figures


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="throughput file, MiB")
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=None, help="MiB")
    parser.add_argument(
        "--patch-mib", type=int, default=PATCH_BYTES // MIB, help="tus PATCH size; 0: one PATCH"
    )
    args = parser.parse_args()
    if args.quick:
        size, memory_sizes, runs = 4 * MIB, [2 * MIB, 6 * MIB], args.runs or 1
    else:
        size, memory_sizes, runs = 200 * MIB, [100 * MIB, 1024 * MIB], args.runs or 3
    if args.size is not None:
        size = args.size * MIB
    if args.memory_sizes is not None:
        memory_sizes = [n * MIB for n in args.memory_sizes]
    bench = prepare(max_bytes=max([size, *memory_sizes]))
    bench.patch_bytes = args.patch_mib * MIB
    patches = f"{args.patch_mib} MiB PATCHes" if args.patch_mib else "one PATCH per file"
    try:
        print(
            f"File vault vs plain Django: uvicorn, {os.cpu_count()} CPUs, median of {runs}, "
            f"tus {patches}"
        )
        rates, clamd_cpu = throughput(bench, size, runs)
        print(f"\nThroughput, {size // MIB} MiB file (MiB/s, median (min-max))")
        for name, values in rates.items():
            print(f"  {name:<22}{spread(values)}")
        # "upload + scan" is the time until the file is available to the room, against
        # the plain upload's time until it is stored: the ratio with the ClamAV scan.
        for vault, plain in (
            ("upload", "upload"),
            ("upload + scan", "upload"),
            ("download", "download"),
        ):
            ratio = statistics.median(rates[f"vault {vault}"]) / statistics.median(
                rates[f"plain {plain}"]
            )
            print(f"  vault/plain {vault:<14}{ratio:8.2f}x")
        print(f"  clamd CPU per scan (s){spread(clamd_cpu)}")
        print("\nPeak RSS (MiB, median (min-max)), one upload and download in a fresh server")
        for memory_size in memory_sizes:
            for name, values in peak_memory(bench, memory_size, runs).items():
                print(f"  {memory_size // MIB:>5} MiB  {name:<18}{spread(values)}")
    finally:
        bench.clamd.stop()
        shutil.rmtree(bench.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
