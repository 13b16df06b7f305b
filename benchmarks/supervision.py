"""Supervision matching cost: messages per second with N lexicon terms, beside the cost
of decrypting them alone, measured in the same run.

Usage (no database: the crypto core and the matcher, as the matching run uses them)::

    .venv/bin/python -m benchmarks.supervision [--messages 20000] [--terms 200] \\
        [--rounds 7] [--flag-share 0.02]

Builds ``--terms`` terms as an officer would: mostly phrases (one to three words), one in
ten an RE2 pattern, and a card-number pattern with the Luhn check; encrypts
``--messages`` chat-like texts (8 to 40 words; ``--flag-share`` of them holding a term)
under one room epoch key exactly as a post does (AES-256-GCM, the message's associated
data). Then, ``--rounds`` times, in alternation so the machine's load falls on both:

* **baseline**: decrypt every message (``message_decrypt_with_key``'s work, no database);
* **matching**: decrypt every message and match it (``compliance.lexicon.Matcher``).

Prints, for each, messages per second (median and the spread: lowest and highest round)
and the matching's own cost per message (matching minus baseline), and the per-message
latency of the match alone (p50 / p99 / max over every message of every round), against
the aim of docs/compliance.md: under 1 ms at p99 with 200 terms.

With ``--posts N`` and ``DATABASE_URL`` set to PostgreSQL, it measures the chat's post
instead, on a scratch database of its own (``<name>_supbench``, created, migrated and
dropped): ``message_post`` (encrypted, audited, matched as it is posted) N times a round
in rotating rooms, ``--rounds`` times alternating a round with no active lexicon and a
round with one active lexicon of ``--terms`` terms (built as above; ``--flag-share`` of
the texts hold one), and prints each mode's post latency (p50 / p99 / max over every
post; the median of the rounds' p99 and their spread) and the p99 difference::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat \\
        .venv/bin/python -m benchmarks.supervision --posts 500 [--terms 200] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
import uuid
from typing import Any

from compliance.lexicon import Matcher, Term, term_validate
from safechat.crypto import KeyPurpose, SymmetricKey, decrypt, encrypt

WORDS = [
    "rate",
    "desk",
    "client",
    "fund",
    "bond",
    "yield",
    "spread",
    "trade",
    "book",
    "hedge",
    "order",
    "fill",
    "price",
    "quote",
    "market",
    "close",
    "open",
    "risk",
    "limit",
    "swap",
    "curve",
    "basis",
    "option",
    "call",
    "put",
    "strike",
    "expiry",
    "margin",
    "collateral",
    "repo",
    "treasury",
    "note",
    "bill",
    "coupon",
    "duration",
    "convexity",
    "liquidity",
    "volume",
    "settlement",
    "custody",
    "broker",
    "dealer",
    "account",
    "transfer",
    "wire",
    "approval",
    "review",
    "report",
    "morning",
    "afternoon",
    "tomorrow",
    "today",
    "meeting",
    "lunch",
    "call",
    "later",
    "check",
    "send",
    "update",
    "please",
    "thanks",
    "sure",
    "okay",
    "noted",
    "agreed",
    "confirm",
    "cancel",
    "amend",
    "number",
    "figure",
    "sheet",
    "model",
]
CARD = "4111 1111 1111 1111"


def _draw(n: int) -> int:
    return secrets.randbelow(n)


def build_terms(count: int) -> list[Term]:
    """``count`` validated terms: phrases, some RE2 patterns, one Luhn-checked pattern."""
    terms = [Term(1, 1, "pattern", r"\b(?:\d[ -]?){12,18}\d\b", "luhn")]
    while len(terms) < count:
        index = len(terms) + 1
        if index % 10 == 0:
            value = rf"\b(?:promise|assure)\w*\s+\w+\s+{index}\b"
            kind = "pattern"
        else:
            length = 1 + _draw(3)
            value = " ".join(f"{WORDS[_draw(len(WORDS))]}x{index}" for _ in range(length))
            kind = "phrase"
        terms.append(Term(index, 1 + index % 5, kind, term_validate(kind=kind, value=value)))
    return terms


def build_texts(count: int, terms: list[Term], flag_share: float) -> list[str]:
    phrases = [t.value for t in terms if t.kind == "phrase"]
    texts = []
    for _ in range(count):
        words = [WORDS[_draw(len(WORDS))] for _ in range(8 + _draw(33))]
        if _draw(10_000) < int(flag_share * 10_000):
            hit = CARD if _draw(4) == 0 else phrases[_draw(len(phrases))]
            words.insert(_draw(len(words)), hit)
        texts.append(" ".join(words))
    return texts


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


POST_SUFFIX = "_supbench"


def _posts_bench(*, posts: int, terms_wanted: int, rounds: int, flag_share: float) -> None:
    """Post latency with and without an active lexicon, alternating rounds (Django set up)."""
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from accounts.models import User
    from accounts.roles import Role, roles_sync
    from compliance.models import SupervisionItem, SupervisionLexicon, SupervisionTerm
    from compliance.services.supervision import supervision_lexicon_set_active
    from rooms.services import message_post, room_create

    owner = User.objects.create_user(username="bench-owner", password=secrets.token_hex(16))
    roles_sync()
    owner.groups.add(Group.objects.get(name=Role.ROOM_ADMIN))
    owner = User.objects.get(pk=owner.pk)
    officer = User.objects.create_user(username="bench-officer", password=secrets.token_hex(16))
    officer.groups.add(Group.objects.get(name=Role.COMPLIANCE_OFFICER))
    officer = User.objects.get(pk=officer.pk)
    rooms = [room_create(actor=owner, name=f"bench room {n}") for n in range(10)]
    now = timezone.now()
    lexicon = SupervisionLexicon.objects.create(
        name="bench", active=False, created_by=owner, created_at=now
    )
    terms = build_terms(terms_wanted)
    SupervisionTerm.objects.bulk_create(
        [
            SupervisionTerm(
                lexicon=lexicon, kind=t.kind, value=t.value, checksum=t.check,
                created_by=owner, created_at=now,
            )
            for t in terms
        ]
    )  # fmt: skip
    texts = build_texts(posts, terms, flag_share)
    # The matching's own share of each post: the registered inspector, timed in place.
    from compliance.services.supervision import supervision_match_posted
    from rooms.supervision import posted_inspector_register

    own: dict[bool, list[float]] = {False: [], True: []}
    mode = {"active": False}

    def timed(message: Any, text: str) -> Any:
        started = time.perf_counter()
        try:
            return supervision_match_posted(message=message, text=text)
        finally:
            own[mode["active"]].append(time.perf_counter() - started)

    posted_inspector_register(timed)
    for text in texts[:20]:  # warm up: connections, keys, the compiled matcher
        message_post(sender=owner, room=rooms[0], text=text)
    own[False].clear()
    latency: dict[bool, list[float]] = {False: [], True: []}
    p99s: dict[bool, list[float]] = {False: [], True: []}
    for round_number in range(rounds * 2):
        active = round_number % 2 == 1
        mode["active"] = active
        supervision_lexicon_set_active(actor=officer, lexicon=lexicon, active=active)
        this_round = []
        for index, text in enumerate(texts):
            started = time.perf_counter()
            message_post(sender=owner, room=rooms[index % len(rooms)], text=text)
            this_round.append(time.perf_counter() - started)
        latency[active] += this_round
        p99s[active].append(percentile(this_round, 0.99))
    print(
        f"{posts} posts a round, {rounds} rounds each, {len(terms)} terms "
        f"({sum(t.kind == 'pattern' for t in terms)} patterns); "
        f"{SupervisionItem.objects.count()} items queued; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for active in (False, True):
        values = latency[active]
        print(
            f"{'with' if active else 'without':<7} the lexicon: post p50 "
            f"{percentile(values, 0.5) * 1e3:.2f} ms, p99 {percentile(values, 0.99) * 1e3:.2f} ms"
            f", max {max(values) * 1e3:.1f} ms; rounds' p99 median "
            f"{statistics.median(p99s[active]) * 1e3:.2f} ms (spread "
            f"{min(p99s[active]) * 1e3:.2f} to {max(p99s[active]) * 1e3:.2f})"
        )
        print(
            f"        matching inside the post (supervision_match_posted): p50 "
            f"{percentile(own[active], 0.5) * 1e3:.3f} ms, p99 "
            f"{percentile(own[active], 0.99) * 1e3:.3f} ms"
        )
    difference = percentile(latency[True], 0.99) - percentile(latency[False], 0.99)
    print(f"p99 with minus without: {difference * 1e3:.2f} ms (aim: under 1 ms)")


def _posts_main(args: argparse.Namespace) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    import psycopg

    from benchmarks.scratch import bench_urls, django_setup

    source = os.environ.get("DATABASE_URL", "")
    if not source.startswith(("postgres://", "postgresql://")):
        raise SystemExit("--posts needs DATABASE_URL set to a PostgreSQL URL")
    bench_url, name, admin_url = bench_urls(source, POST_SUFFIX)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    data_dir = Path(tempfile.mkdtemp(prefix="supbench-"))
    try:
        django_setup(bench_url, data_dir)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        _posts_bench(
            posts=args.posts,
            terms_wanted=args.terms,
            rounds=args.rounds,
            flag_share=args.flag_share,
        )
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(data_dir, ignore_errors=True)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--terms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--flag-share", type=float, default=0.02)
    parser.add_argument("--posts", type=int, default=0, help="measure posts on PostgreSQL")
    args = parser.parse_args()
    if args.posts:
        _posts_main(args)
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
    import django

    django.setup()
    from safechat.keyring.services import message_aad  # the associated data a post uses

    terms = build_terms(args.terms)
    matcher = Matcher(terms)
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    sealed = []
    for text in build_texts(args.messages, terms, args.flag_share):
        uid = uuid.uuid4()
        aad = message_aad(room_id=1, message_uid=uid, epoch=1, sender_id=2)
        sealed.append((encrypt(key, text.encode(), aad=aad), aad))

    baseline: list[float] = []
    matching: list[float] = []
    match_latency: list[float] = []
    flagged = 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        for ciphertext, aad in sealed:
            decrypt(key, ciphertext, aad=aad).decode()
        baseline.append(args.messages / (time.perf_counter() - started))

        flagged = 0
        started = time.perf_counter()
        for ciphertext, aad in sealed:
            text = decrypt(key, ciphertext, aad=aad).decode()
            before = time.perf_counter()
            hits, _ = matcher.match(text)
            match_latency.append(time.perf_counter() - before)
            flagged += bool(hits)
        matching.append(args.messages / (time.perf_counter() - started))

    def line(name: str, rates: list[float]) -> str:
        return (
            f"{name:<26} median {statistics.median(rates):>10,.0f} msg/s   "
            f"spread {min(rates):,.0f} to {max(rates):,.0f} over {len(rates)} rounds"
        )

    base_us = 1e6 / statistics.median(baseline)
    match_us = 1e6 / statistics.median(matching)
    print(
        f"{args.messages:,} messages, {len(terms)} terms "
        f"({sum(t.kind == 'pattern' for t in terms)} patterns), "
        f"{flagged:,} flagged per round; load average {os.getloadavg()[0]:.2f}"
    )
    print(line("baseline (decrypt)", baseline))
    print(line("decrypt + match", matching))
    print(
        f"per message: decrypt {base_us:.1f} us, decrypt + match {match_us:.1f} us, "
        f"matching's own cost {match_us - base_us:.1f} us"
    )
    print(
        "match alone per message: "
        f"p50 {percentile(match_latency, 0.5) * 1e6:.1f} us, "
        f"p99 {percentile(match_latency, 0.99) * 1e6:.1f} us, "
        f"max {max(match_latency) * 1e6:.1f} us (aim: p99 under 1,000 us)"
    )


if __name__ == "__main__":
    main()
