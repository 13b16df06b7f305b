"""Tests share one data folder; what one test writes outside the database stays its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from audit.services import audit_checkpoint_write
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def test_a_checkpoint_in_any_test_anchors_into_that_tests_own_file(
    tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # given a test outside the audit suite whose actions write audit events
    shared = Path(settings.DATA_DIR) / "audit-anchors.jsonl"
    shared_before = shared.read_bytes() if shared.exists() else None
    make_room(owner=make_user())

    # when a checkpoint is written (anchored once it commits)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint = audit_checkpoint_write(force=True)

    # then it is anchored in this test's own file, never in the data folder's
    assert checkpoint is not None
    own = Path(settings.SAFECHAT_AUDIT_ANCHOR_FILE)
    assert own.parent == tmp_path
    assert len(own.read_text().splitlines()) == 1
    assert (shared.read_bytes() if shared.exists() else None) == shared_before
