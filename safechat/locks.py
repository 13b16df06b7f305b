"""Row locks in the project's one lock order (docs/architecture.md, "Locks").

Every transaction that locks more than one row takes its locks in this order, each
kind in ascending id order, and appends to the audit chain last:

1. groups (``auth.Group``): barrier changes and changes of who is in a group (a SCIM
   group's row, ``accounts.ScimGroup``, before them);
2. users: the people whose rooms or groups change;
3. rooms;
4. memberships and invitations of those rooms;
5. messages, then their reactions and revisions; files of the vault;
6. key rows: epochs, sealed key copies, key pairs;
7. the audit chain's advisory lock, always last: nothing is locked or waited for
   after a transaction's first ``audit_record``.

Two transactions that follow one order can wait for each other but never deadlock.
A row that is not deleted is locked ``FOR NO KEY UPDATE`` (``rows_locked``, or
``select_for_update(no_key=True)``), never ``FOR UPDATE``: the ``KEY SHARE`` lock an
insert takes on the rows it points at (after an audit append, say) never waits for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def rows_locked(model: type[M], ids: Iterable[int]) -> list[M]:
    """The rows with ``ids``, locked until the transaction ends, in ascending id order.

    ``FOR NO KEY UPDATE``: it serialises the services that lock the same rows, but lets
    other transactions insert rows that point at them (a message's sender, say).
    """
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = model._default_manager.select_for_update(no_key=True).filter(pk__in=wanted)
    return list(rows.order_by("pk"))
