"""Print the audit signing key's public half, for ``python -m audit.verify_export``."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management.base import CommandParser

from audit import signing
from audit.chain import key_id_for
from safechat.commands import SafeChatCommand


class Command(SafeChatCommand):
    help = "Print the audit public key (base64 of the raw 32 bytes; --pem for PEM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pem", action="store_true", help="print PEM (SubjectPublicKeyInfo)")
        parser.add_argument("--key-id", action="store_true", help="also print the key id")

    def handle(self, *args: Any, **options: Any) -> None:
        key = signing.public_key()
        if options["pem"]:
            text = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
            self.stdout.write(text.rstrip("\n"))
        else:
            self.stdout.write(signing.public_key_base64(key))
        if options["key_id"]:
            self.stdout.write(f"key_id {key_id_for(key)}")
