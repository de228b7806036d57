"""ConversationTree: paths, sibling positions, switching to a sibling's newest branch."""

from __future__ import annotations

from app.core.history import StoredMessage
from app.core.history_tree import ConversationTree


def msg(mid: int, parent: int | None, role: str = "user", text: str = "") -> StoredMessage:
    return StoredMessage(mid, "c", role, text or f"m{mid}", float(mid), None, None, None, None, {}, "complete",  # type: ignore[arg-type]
                         None, {}, parent)


#   1 user ─┬─ 2 answer ── 3 user ── 4 answer
#           ├─ 5 answer (regenerated)
#           └─ 6 answer ── 7 user ── 8 answer
#   9 user (an edited first message: a second root)
TREE = [msg(1, None), msg(2, 1, "assistant"), msg(3, 2), msg(4, 3, "assistant"), msg(5, 1, "assistant"),
        msg(6, 1, "assistant"), msg(7, 6), msg(8, 7, "assistant"), msg(9, None)]  # fmt: skip


def test_paths_positions_and_leaves() -> None:
    tree = ConversationTree(reversed(TREE), active_leaf_id=4)
    assert [m.id for m in tree.path()] == [1, 2, 3, 4]
    assert [m.id for m in tree.path(8)] == [1, 6, 7, 8]
    assert tree.position(2) == (1, 3) and tree.position(6) == (3, 3) and tree.position(3) == (1, 1)
    assert tree.position(1) == (1, 2) and tree.position(9) == (2, 2)  # roots are siblings too
    assert [m.id for m in tree.siblings(5)] == [2, 5, 6]
    assert [m.id for m in tree.children(None)] == [1, 9]
    assert [m.id for m in tree.leaves()] == [4, 5, 8, 9]
    assert tree.branch_point(8) == 6 and tree.branch_point(4) is None and tree.branch_point(9) == 9


def test_switching_to_a_sibling_shows_its_newest_branch_and_wraps() -> None:
    tree = ConversationTree(TREE, active_leaf_id=4)
    assert tree.newest_leaf(6) == 8 and tree.newest_leaf(5) == 5 and tree.newest_leaf(1) == 8
    assert tree.sibling_leaf(2, 1) == 5
    assert tree.sibling_leaf(2, 2) == 8
    assert tree.sibling_leaf(2, -1) == 8  # wraps round
    assert tree.sibling_leaf(6, 1) == 4
    assert tree.sibling_leaf(1, 1) == 9 and tree.sibling_leaf(9, 1) == 8


def test_unknown_active_leaf_and_lost_parents_and_cycles_are_survived() -> None:
    assert ConversationTree(TREE, active_leaf_id=999).active_leaf_id == 9  # the newest message
    assert ConversationTree([]).path() == [] and ConversationTree([]).active_leaf_id is None
    orphan = ConversationTree([msg(2, 1, "assistant"), msg(3, 2)])  # message 1 was lost
    assert [m.id for m in orphan.path(3)] == [2, 3] and orphan.position(2) == (1, 1)
    cycle = ConversationTree([msg(1, 2), msg(2, 1)])  # a damaged file: never loops
    assert len(cycle.path(1)) <= 2
