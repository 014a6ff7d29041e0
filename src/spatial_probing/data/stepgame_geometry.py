"""StepGame scene geometry: the queried pair's 2-D grid offset, composed along the story.

Each StepGame statement places one agent at a unit offset (one of ``STEPGAME_DIRECTIONS``, y up)
from another; chaining them gives the question's pair an integer offset such as ``(2, -1)``, whose
*magnitude* is nowhere in the question's words (the 9-way label only gives its sign pattern).

StepGame's sentences come from a finite set of templates per relation (upstream
``Code/template.py`` in github ZhengxiangShi/StepGame; every shape below was also seen in the
clean data). Each shape is read *literally* (what the words say). A few shapes are generated
upstream for a relation other than the one their words state (e.g. "A is there and B is at the
10 position of a clock face." is produced for lower-left as well as upper-left, "B is to the
right and above A at an angle of about 45 degrees." for three relations, and the "parallel" /
"both there" right-of shapes with their agents reversed). There the words do not say what the
generator placed, so :func:`parse_statement` returns None for them (:data:`MISUSED`), as for any
unknown shape: nothing is guessed. (One more shape, "A is diagonally left and above A.", names the
same agent twice upstream and is not read either.)

Checked on the clean data (all 130,000 records here, 2026-11-29): 94.3% of sentences are read, and
every composed offset's sign pattern equals the item's label (no disagreement at any k); the
labels' reported ~10% error rate comes from exactly the shapes left unread. See README
"StepGame scene geometry" for the numbers per k.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from spatial_probing.data.schema import STEPGAME_DIRECTIONS

__all__ = ["MISUSED", "TEMPLATES", "checked_offset", "compose_offset", "offset_sign", "parse_statement"]

_AGENT = re.compile(r"\b([A-Z])\b")

#: relation → sentence shapes stating "{a} is at that relation's offset from {b}" (literal reading).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "left": (
        "{a} is to the left of {b}.", "{a} is at {b}'s 9 o'clock.", "{a} is positioned left to {b}.",
        "{a} is on the left side to {b}.", "{a} and {b} are parallel, and {a} on the left of {b}.",
        "{a} is to the left of {b} horizontally.",
        "The object labeled {a} is positioned to the left of the object labeled {b}.",
        "{b} is over there and {a} is on the left.", "{a} is placed in the left direction of {b}.",
        "{a} is on the left and {b} is on the right.", "{a} is sitting at the 9:00 position of {b}.",
        "{a} is sitting in the left direction of {b}.", "{b} is over there and {a} is on the left of it.",
        "{a} is at the 9 o'clock position relative to {b}.",
        "{a} and {b} are parallel, and {a} is to the left of {b}.",
        "{a} and {b} are horizontal and {a} is to the left of {b}.",
        "{a} and {b} are in a horizontal line with {a} on the left.",
        "{a} is to the left of {b} with a small gap between them.",
        "{a} is on the same horizontal plane directly left to {b}.",
        "{a} is to the left of {b} and is on the same horizontal plane.",
        "{b} and {a} are side by side with {b} to the right and {a} to the left.",
        "{a} and {b} are both there with the object {a} is to the left of object {b}.",
        "{a} and {b} are next to each other with {b} on the right and {a} on the left.",
        "{a} presents left to {b}.",
    ),
    "right": (
        "{a} is to the right of {b}.", "{a} is at {b}'s 3 o'clock.", "{a} is positioned right to {b}.",
        "{a} is on the right side to {b}.", "{a} and {b} are parallel, and {a} on the right of {b}.",
        "{a} is to the right of {b} horizontally.",
        "The object labeled {a} is positioned to the right of the object labeled {b}.",
        "{b} is over there and {a} is on the right.", "{a} is placed in the right direction of {b}.",
        "{a} is on the right and {b} is on the left.", "{a} is sitting at the 3:00 position to {b}.",
        "{a} is sitting in the right direction of {b}.", "{b} is over there and {a} is on the right of it.",
        "{a} is at the 3 o'clock position relative to {b}.",
        "{a} and {b} are parallel, and {a} is to the right of {b}.",
        "{a} and {b} are horizontal and {a} is to the right of {b}.",
        "{a} and {b} are in a horizontal line with {a} on the right.",
        "{a} is to the right of {b} with a small gap between them.",
        "{a} is on the same horizontal plane directly right to {b}.",
        "{a} is to the right of {b} and is on the same horizontal plane.",
        "{b} and {a} are side by side with {b} to the left and {a} to the right.",
        "{a} and {b} are both there with the object {a} is to the right of object {b}.",
        "{b} and {a} are next to each other with {b} on the left and {a} on the right.",
        "{a} presents right to {b}.",
    ),
    "above": (
        "{a} is over {b}.", "{a} is above {b}.", "{a} is directly above {b}.", "{a} is on top of {b}.",
        "{a} is at {b}'s 12 o'clock.", "{a} is positioned above {b}.", "{a} is on the top side to {b}.",
        "{a} and {b} are parallel, and {a} is over {b}.", "{a} is to the top of {b} vertically.",
        "{a} is over there with {b} below.", "The object {a} is positioned directly above the object {b}.",
        "{b} is over there and {a} is directly above it.", "{a} is placed on the top of {b}.",
        "{a} is on the top and {b} is at the bottom.", "{a} is sitting at the 12:00 position to {b}.",
        "{a} is sitting at the top position to {b}.", "{b} is over there and {a} is on the top of it.",
        "{a} is at the 12 o'clock position relative to {b}.",
        "{a} and {b} are parallel, and {a} is on top of {b}.", "{a} and {b} are vertical and {a} is above {b}.",
        "{a} and {b} are in a vertical line with {a} on top.", "{a} is above {b} with a small gap between them.",
        "{a} is on the same vertical plane directly above {b}.",
        "{a} is on the top of {b} and is on the same vertical plane.",
        "{a} and {b} are side by side with {a} on the top and {b} at the bottom.",
        "{a} and {b} are both there with the object {a} above the object {b}.",
        "{a} and {b} are next to each other with {a} on the top and {b} at the bottom.",
        "{a} presents over {b}.",
    ),
    "below": (
        "{a} is under {b}.", "{a} is below {b}.", "{a} is directly below {b}.", "{a} is at the bottom of {b}.",
        "{a} is at {b}'s 6 o'clock.", "{a} is positioned below {b}.", "{a} is at the lower side of {b}.",
        "{a} and {b} are parallel, and {a} is under {b}.", "{a} is at the bottom of {b} vertically.",
        "{a} is over there with {b} above.", "The object {a} is positioned directly below the object {b}.",
        "{b} is over there and {a} is directly below it.", "{a} is placed at the bottom of {b}.",
        "{a} is at the bottom and {b} is on the top.", "{a} is sitting at the 6:00 position to {b}.",
        "{a} is sitting at the lower position to {b}.", "{b} is over there and {a} is at the bottom of it.",
        "{a} is at the 6 o'clock position relative to {b}.", "{b} and {a} are parallel, and {a} is below {b}.",
        "{a} and {b} are vertical and {a} is below {b}.", "{b} and {a} are in a vertical line with {a} below {b}.",
        "{a} is below {b} with a small gap between them.", "{a} is on the same vertical plane directly below {b}.",
        "{a} is at the bottom of {b} and is on the same vertical plane.",
        "{b} and {a} are side by side with {a} at the bottom and {b} on the top.",
        "{b} and {a} are both there with the object {a} below the object {b}.",
        "{b} and {a} are next to each other with {a} at the bottom {b} on the top.",
        "{a} presents below {b}.",
    ),
    "lower-left": (
        "{a} is on the lower left of {b}.", "{a} is to the bottom left of {b}.",
        "The object {a} is lower and slightly to the left of the object {b}.",
        "{a} is on the left side of and below {b}.", "{a} is positioned in the lower left corner of {b}.",
        "{a} is lower left to {b}.", "{a} is to the bottom-left of {b}.", "{a} is below {b} at 7 o'clock.",
        "{a} is positioned down and to the left of {b}.",
        "The object {a} is positioned below and to the left of the object {b}.",
        "{a} is diagonally left and below {b}.", "{a} is placed at the lower left of {b}.",
        "{a} is sitting at the lower left position to {b}.",
        "{a} is to the left of {b} and below {b} at approximately a 45 degree angle.",
        "{a} is south west of {b}.", "{a} is below and to the left of {b}.",
        "The objects {a} and {b} are over there. The object {a} is lower and slightly to the left of the object {b}.",
        "{a} is directly south west of {b}.", "{a} is positioned below {b} and to the left.",
        "{a} is at a 45 degree angle to {b}, in the lower lefthand corner.",
        "{a} is diagonally below {b} to the left at a 45 degree angle.",
        "Object {a} is below object {b} and to the left of it, too.", "{a} is diagonally to the bottom left of {b}.",
        "{a} presents lower left to {b}.", "If {b} is the center of a clock face, {a} is located between 7 and 8.",
        "{a} is below {b} and to the left of {b}.",
    ),
    "upper-right": (
        "{a} is on the upper right of {b}.", "{a} is to the top right of {b}.",
        "The object {a} is upper and slightly to the right of the object {b}.",
        "{a} is on the right side and top of {b}.", "{a} is positioned in the front right corner of {b}.",
        "{a} is upper right to {b}.", "{a} is to the top-right of {b}.", "{a} is above {b} at 2 o'clock.",
        "{a} is positioned up and to the right of {b}.",
        "The object {a} is positioned above and to the right of the object {b}.",
        "{a} is diagonally right and above {b}.", "{a} is placed at the upper right of {b}.",
        "{a} is sitting at the upper right position to {b}.",
        "{b} is there and {a} is at the 2 position of a clock face.",
        "{a} is to the right and above {b} at an angle of about 45 degrees.",
        "{a} is north east of {b}.", "{a} is above and to the right of {b}.",
        "The objects {a} and {b} are over there. The object {a} is above and slightly to the right of the object {b}.",
        "{a} is directly north east of {b}.", "{a} is positioned above {b} and to the right.",
        "{a} is at a 45 degree angle to {b}, in the upper righthand corner.",
        "{a} is diagonally above {b} to the right at a 45 degree.",
        "Object {a} is above object {b} and to the right of it, too.", "{a} is diagonally to the upper right of {b}.",
        "{a} presents upper right to {b}.", "If {b} is the center of a clock face, {a} is located between 2 and 3.",
        "{a} is above {b} and to the right of {b}.",
    ),
    "lower-right": (
        "{a} is on the lower right of {b}.", "{a} is to the bottom right of {b}.",
        "The object {a} is lower and slightly to the right of the object {b}.",
        "{a} is on the right side and below {b}.",
        "{b} is slightly off center to the top left and {a} is slightly off center to the bottom right.",
        "{a} is positioned in the lower right corner of {b}.", "{a} is lower right of {b}.",
        "{a} is to the bottom-right of {b}.", "{a} is below {b} at 4 o'clock.",
        "{a} is positioned below and to the right of {b}.",
        "The object {a} is positioned below and to the right of the object {b}.",
        "{a} is diagonally right and below {b}.", "{a} is placed at the lower right of {b}.",
        "{a} is sitting at the lower right position to {b}.",
        "{b} is there and {a} is at the 5 position of a clock face.", "{a} is south east of {b}.",
        "{a} is below and to the right of {b}.",
        "The object {a} and {b} are there. The object {a} is below and slightly to the right of the object {b}.",
        "{a} is directly south east of {b}.", "{a} is positioned below {b} and to the right.",
        "{a} is at a 45 degree angle to {b}, in the lower righthand corner.",
        "{a} is diagonally below {b} to the right at a 45 degree angle.",
        "Object {a} is below object {b} and to the right of it, too.", "{a} is diagonally to the bottom right of {b}.",
        "{a} presents lower right to {b}.", "If {b} is the center of a clock face, {a} is located between 4 and 5.",
        "{a} is below {b} and to the right of {b}.",
    ),
    "upper-left": (
        "{a} is to the upper left of {b}.", "The object {a} is upper and slightly to the left of the object {b}.",
        "{a} is on the left side and above {b}.", "{a} is positioned in the top left corner of {b}.",
        "{a} is upper left of {b}.", "{a} is to the top-left of {b}.", "{a} is above {b} at 10 o'clock.",
        "{a} is positioned above and to the left of {b}.",
        "The object {a} is positioned above and to the left of object {b}.",
        "{a} is diagonally left and above {b}.", "{a} is placed at the upper left of {b}.",
        "{a} is sitting at the upper left position to {b}.",
        "{b} is there and {a} is at the 10 position of a clock face.", "{a} is north west of {b}.",
        "{a} is above and to the left of {b}.",
        "The object {b} and {a} are there. The object {a} is above and slightly to the left of the object {b}.",
        "{a} is directly north west of {b}.", "{a} is positioned above {b} and to the left.",
        "{a} is at a 45 degree angle to {b}, in the upper lefthand corner.",
        "{a} is diagonally above {b} to the left at a 45 degree angle.",
        "Object {a} is above object {b} and to the left of it, too.", "{a} is diagonally to the upper left of {b}.",
        "{a} presents upper left to {b}.",
        "If {b} is the center of a clock face, {a} is located between 10 and 11.",
        "{a} is above {b} and to the left of {b}.",
    ),
}

#: Shapes the upstream generator also emits for a relation other than the one their words state
#: (checked on the clean data: see the module docstring); their statements are not read.
MISUSED: frozenset[str] = frozenset({
    "@ is there and @ is at the 10 position of a clock face.",                 # also for lower-left
    "@ is to the right and above @ at an angle of about 45 degrees.",          # also lower-right, upper-left
    "@ is positioned below @ and to the left.",                                # for lower-left, agents reversed
    "@ is placed at the bottom of @.",                                         # for below, agents reversed
    "@ and @ are parallel, and @ on the right of @.",                          # for right, agents reversed
    "@ and @ are parallel, and @ is to the right of @.",                       # for right, agents reversed
    "@ and @ are horizontal and @ is to the right of @.",                      # for right, agents reversed
    "@ and @ are both there with the object @ is to the right of object @.",   # for right, agents reversed
})

_CONJUNCTION = re.compile(r"^((?:The objects? )?)\{(a|b)\} and \{(a|b)\}")


def _shape(template: str) -> tuple[str, tuple[str, ...]]:
    """``(shape, roles)``: the template with each agent slot as ``@`` and the slots' roles in order."""
    return re.sub(r"\{[ab]\}", "@", template), tuple(re.findall(r"\{([ab])\}", template))


def _table() -> dict[str, dict[tuple[str, ...], tuple[int, int]]]:
    """shape → {slot roles → offset}; one shape may carry its two names in either order."""
    table: dict[str, dict[tuple[str, ...], tuple[int, int]]] = {}
    for relation, templates in TEMPLATES.items():
        for template in templates:
            # "X and Y are ..." states the same with the two names in either order
            swapped = _CONJUNCTION.sub(lambda m: f"{m.group(1)}{{{m.group(3)}}} and {{{m.group(2)}}}", template)
            for variant in {template, swapped}:
                shape, roles = _shape(variant)
                if table.setdefault(shape, {}).setdefault(roles, STEPGAME_DIRECTIONS[relation]) != \
                        STEPGAME_DIRECTIONS[relation]:
                    raise ValueError(f"StepGame template shape {shape!r} is listed with two readings")
    return table


_TABLE = _table()


def _fit(roles: tuple[str, ...], names: list[str]) -> tuple[str, str] | None:
    """``(a, b)`` if the names fill the slots consistently (same role, same name; two agents)."""
    who: dict[str, str] = {}
    for role, name in zip(roles, names):
        if who.setdefault(role, name) != name:
            return None
    return (who["a"], who["b"]) if len(who) == 2 and who["a"] != who["b"] else None


@lru_cache(maxsize=100_000)  # a sentence recurs ~3.6x in StepGame's clean data
def parse_statement(sentence: str) -> tuple[str, str, tuple[int, int]] | None:
    """``(a, b, (dx, dy))``: agent ``a`` sits at ``(dx, dy)`` from agent ``b`` (y up); None if not understood.

    None for a shape outside :data:`TEMPLATES`, a shape in :data:`MISUSED`, or names that do not fit
    the shape (a slot's two mentions differ, or both agents are the same).
    """
    parts = _AGENT.split(sentence.strip().replace("\u2019", "'"))
    shape, names = "@".join(parts[::2]), parts[1::2]
    entry = _TABLE.get(shape)
    if entry is None or shape in MISUSED:
        return None
    readings = {(*pair, offset) for roles, offset in entry.items() if (pair := _fit(roles, names))}
    return readings.pop() if len(readings) == 1 else None


def compose_offset(story: Sequence[str] | str, a: str, b: str) -> tuple[int, int] | None:
    """Offset of agent ``a`` from agent ``b`` composed over the story's statements (BFS, edges both ways).

    None when the two agents are not connected through understood statements (an unparsed sentence
    on the path, or no path) or when the statements reachable from ``b`` place an agent at two
    different positions (a contradictory story).
    """
    adjacent: dict[str, list[tuple[str, int, int]]] = {}
    for parsed in map(parse_statement, [story] if isinstance(story, str) else story):
        if parsed is not None:
            x, y, (dx, dy) = parsed                         # pos[x] = pos[y] + (dx, dy)
            adjacent.setdefault(y, []).append((x, dx, dy))
            adjacent.setdefault(x, []).append((y, -dx, -dy))
    if a not in adjacent or b not in adjacent:
        return None
    pos = {b: (0, 0)}
    order = [b]
    for node in order:  # breadth-first: ``order`` grows while it is walked
        px, py = pos[node]
        for other, dx, dy in adjacent[node]:
            here, seen = (px + dx, py + dy), pos.get(other)
            if seen is None:
                pos[other] = here
                order.append(other)
            elif seen != here:
                return None
    return pos.get(a)


def offset_sign(offset: tuple[int, int]) -> tuple[int, int]:
    """The sign pattern of an offset: what a StepGame label's unit vector says about it."""
    return (offset[0] > 0) - (offset[0] < 0), (offset[1] > 0) - (offset[1] < 0)


def checked_offset(story: Sequence[str] | str, a: str, b: str, label: str) -> tuple[tuple[int, int] | None, str]:
    """``(offset, status)`` of ``a`` from ``b`` checked against the item's label.

    status ``"composed"`` (offset given), ``"not-derivable"`` (no offset) or ``"disagrees"`` (the composed
    offset's sign pattern is not the label's unit offset: no offset is given rather than overriding the label).
    """
    offset = compose_offset(story, a, b)
    if offset is None:
        return None, "not-derivable"
    if offset_sign(offset) != STEPGAME_DIRECTIONS[label]:
        return None, "disagrees"
    return offset, "composed"
