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
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
import uuid

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--terms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--flag-share", type=float, default=0.02)
    args = parser.parse_args()
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
