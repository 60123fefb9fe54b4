"""Hypothesis mutations of the JSON documents AWS sends the functions: what a broken sender could make of them.

``mutate`` applies a few edits at paths into a document (keys, and list indexes): a key dropped, a value
of another JSON type, unicode, a value as large as EventBridge delivers (256 KB), a string cut short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)

Path = tuple[str | int, ...]


def _parent(document: Any, path: Path) -> Any:
    holder = document
    for key in path[:-1]:
        if (isinstance(holder, dict) and key in holder) or (
            isinstance(holder, list) and isinstance(key, int) and key < len(holder)
        ):
            holder = holder[key]
        else:
            return None
    return holder


def mutate(draw: st.DrawFn, document: dict[str, Any], paths: Sequence[Path], *, min_edits: int = 0) -> dict[str, Any]:
    """Edit ``document`` in place at up to three of ``paths`` (at least ``min_edits`` tries; 0: as AWS sends it)."""
    for _ in range(draw(st.integers(min_edits, 3))):
        path = draw(st.sampled_from(paths))
        holder = _parent(document, path)
        key = path[-1]
        if not isinstance(holder, dict) or key not in holder:
            continue
        action = draw(st.sampled_from(["drop", "type", "unicode", "huge", "cut"]))
        if action == "drop":
            holder.pop(key)
        elif action == "type":
            holder[key] = draw(json_values)
        elif action == "unicode":
            holder[key] = draw(st.text(min_size=1, max_size=40))
        elif action == "huge":  # EventBridge delivers events up to 256 KB
            holder[key] = draw(st.sampled_from(["\u00e9" * 100_000, "x" * 200_000, ["x"] * 20_000]))
        elif isinstance(holder[key], str):
            holder[key] = holder[key][: draw(st.integers(0, max(0, len(holder[key]) - 1)))]
    return document
