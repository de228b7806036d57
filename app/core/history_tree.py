"""A conversation's messages as a tree: paths, siblings, branches (pure Python, no database).

A *branch* is the path from a root to a leaf. The *active* branch ends at the conversation's
active leaf; switching to a sibling shows that sibling's newest leaf (the branch last worked
on below it), so the whole path below the sibling comes with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core.history_types import StoredMessage


class ConversationTree:
    """Messages (any order) and the active leaf id (None or unknown: the newest message)."""

    def __init__(self, messages: Iterable[StoredMessage], active_leaf_id: int | None = None) -> None:
        self.by_id: dict[int, StoredMessage] = {m.id: m for m in sorted(messages, key=lambda m: m.id)}
        self._children: dict[int | None, list[int]] = {}
        for m in self.by_id.values():
            parent = m.parent_id if m.parent_id in self.by_id else None
            self._children.setdefault(parent, []).append(m.id)
        if active_leaf_id not in self.by_id:
            active_leaf_id = max(self.by_id) if self.by_id else None
        self.active_leaf_id: int | None = active_leaf_id

    def __len__(self) -> int:
        return len(self.by_id)

    def messages(self) -> list[StoredMessage]:
        """Every message, oldest first."""
        return list(self.by_id.values())

    def parent_of(self, message_id: int) -> int | None:
        """The parent's id (None for a root, or a parent that is not stored)."""
        parent = self.by_id[message_id].parent_id
        return parent if parent in self.by_id else None

    def children(self, message_id: int | None) -> list[StoredMessage]:
        """The messages that follow ``message_id`` (None: the roots), oldest first."""
        return [self.by_id[i] for i in self._children.get(message_id, [])]

    def siblings(self, message_id: int) -> list[StoredMessage]:
        """``message_id`` and the other messages with the same parent, oldest first."""
        return self.children(self.parent_of(message_id))

    def position(self, message_id: int) -> tuple[int, int]:
        """``(k, n)``: the message is the k-th (from 1) of its n siblings."""
        ids = self._children.get(self.parent_of(message_id), [])
        return ids.index(message_id) + 1, len(ids)

    def path(self, leaf_id: int | None = None) -> list[StoredMessage]:
        """Root first, down to ``leaf_id`` (default: the active leaf). Empty for an empty tree."""
        current = self.active_leaf_id if leaf_id is None else leaf_id
        out: list[StoredMessage] = []
        seen: set[int] = set()
        while current is not None and current in self.by_id and current not in seen:
            seen.add(current)
            out.append(self.by_id[current])
            current = self.parent_of(current)
        out.reverse()
        return out

    def newest_leaf(self, message_id: int) -> int:
        """The newest message below ``message_id`` (itself when it has none): a leaf, since
        children are always newer than their parent."""
        best, stack = message_id, [message_id]
        while stack:
            node = stack.pop()
            best = max(best, node)
            stack.extend(self._children.get(node, []))
        return best

    def sibling_leaf(self, message_id: int, step: int) -> int:
        """The leaf to show when switching from ``message_id`` ``step`` siblings on (wrapping)."""
        ids = self._children.get(self.parent_of(message_id), [message_id])
        target = ids[(ids.index(message_id) + step) % len(ids)]
        return self.newest_leaf(target)

    def leaves(self) -> list[StoredMessage]:
        """Every message without children, oldest first."""
        return [m for m in self.by_id.values() if not self._children.get(m.id)]

    def branch_point(self, leaf_id: int) -> int | None:
        """Where the branch ending at ``leaf_id`` leaves the active branch: its first message
        that is not on the active path (None when it is the active branch)."""
        active = {m.id for m in self.path()}
        return next((m.id for m in self.path(leaf_id) if m.id not in active), None)
