"""Re-wrap user and compliance private keys under the current master-key version."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from audit.actors import SystemActor
from safechat.commands import SafeChatCommand
from safechat.crypto import CryptoError
from safechat.keyring.errors import RotationIncompleteError
from safechat.keyring.rotation import (
    master_key_rotate,
    master_key_status,
    master_key_version_add,
    master_key_version_retire,
)


class Command(SafeChatCommand):
    help = (
        "Rotate the master key: --new-version adds a version to the key file or the HSM "
        "token and publishes it to every process; then every wrapped private key is "
        "re-wrapped under the current version, in batches, "
        "resumably. --status reports progress; --retire N records that version N may be "
        "removed from the key store (refused while anything is wrapped by it)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--status", action="store_true", help="report progress and exit")
        parser.add_argument(
            "--new-version",
            action="store_true",
            help="add a new master-key version (key file or HSM token) and publish it first",
        )
        parser.add_argument(
            "--batch-size", type=int, default=settings.SAFECHAT_MASTER_ROTATION_BATCH
        )
        parser.add_argument("--retire", type=int, metavar="VERSION")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["status"]:
                self._print_status()
                return
            if options["retire"] is not None:
                master_key_version_retire(actor=_operator(), version=options["retire"])
                self.stdout.write(
                    f"master-key version {options['retire']} retired: nothing is wrapped by it; "
                    "remove it from the key store."
                )
                return
            if options["batch_size"] < 1:
                raise CommandError("--batch-size must be at least 1")
            if options["new_version"]:
                version = master_key_version_add(actor=_operator())
                self.stdout.write(
                    f"added master-key version {version} and published it to every process"
                )
            status = master_key_rotate(
                batch_size=options["batch_size"],
                after_batch=lambda n: self.stdout.write(f"re-wrapped {n} key(s)"),
            )
            self.stdout.write(
                f"master key at version {status.current_version}; "
                f"{status.remaining} key(s) left under older versions"
            )
        except (CryptoError, RotationIncompleteError) as exc:
            raise CommandError(str(exc)) from None

    def _print_status(self) -> None:
        status = master_key_status()
        self.stdout.write(f"current master-key version: {status.current_version}")
        for label, counts in (
            ("user keys", status.users_by_version),
            ("compliance keys", status.compliance_by_version),
            ("record-MAC key", status.record_mac_by_version),
        ):
            by_version = ", ".join(f"v{v}: {n}" for v, n in sorted(counts.items())) or "none"
            self.stdout.write(f"{label}: {by_version}")
        self.stdout.write(f"remaining under older versions: {status.remaining}")


def _operator() -> SystemActor:
    return SystemActor("operator")
