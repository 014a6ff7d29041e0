"""Synthetic scenes: the embedded default dataset, deterministic by seed.

Each scene holds two objects (a colour and a shape) on a 5×5 grid, placed so that one
chosen relation holds between them. Every scene yields a small family of captions that
share ``pair_id``/``group`` (the scene), written from several templates and paraphrases:

* ``original``  — "the A is REL the B" (true);
* ``swapped``   — "the B is REL the A" (arguments swapped; true only for symmetric relations);
* ``converse``  — "the B is CONVERSE(REL) the A" (true; same meaning as the original);
* ``foil``      — "the A is REL' the B" for a relation REL' that is false in the scene.

Truth is computed from geometry: a directional relation holds when the signs of the
displacement equal its direction vector (StepGame's 9-direction scheme); ``near`` holds at
Chebyshev distance 1, ``far`` at ≥ 3; ``inside``/``contains`` when one object encloses the
other. Each scene also renders to a PNG (Pillow), so image–text encoders see it.

Categories (which kinds of relation gain is the research question): ``horizontal``
(left, right), ``vertical`` (above, below), ``diagonal``, ``proximity`` (near, far),
``topological`` (inside, contains).

Wording: all captions of a scene use the SAME template and phrase index (so a minimal pair differs
only in argument order, and the converse uses the parallel phrase: "to the left of" / "to the
right of"). Half the templates name the subject first and half name it second
(:data:`SUBJECT_FIRST`), and each relation's scenes are split exactly half/half between them, so
"the first noun is the subject" is right for exactly half the scenes. ``source`` records
``template``, ``phrase``, ``subject_first`` (so splits can hold out whole wordings) and the scene
geometry of the caption's subject relative to its object: ``dx``, ``dy`` (grid cells, x right, y up),
``distance`` (Chebyshev) and ``distance_bin`` (``near`` ≤ 1 < ``far``).

:func:`generate_converse_twins` builds the converse-transfer design: scenes in twins with the same
shape twice, the colours exchanged between twins, in subject-first templates.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw

from spatial_probing.data.errors import DataError
from spatial_probing.data.schema import Example

GRID = 5
CELL = 44
CANVAS = 224  # CLIP's input resolution
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30),
           "purple": (140, 60, 180), "orange": (240, 140, 20)}
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
CONTAINERS = ("circle", "square")

#: Relation → 2-D direction of the subject relative to the object (x right, y up); None if not directional.
RELATION_DIRECTIONS: dict[str, tuple[int, int] | None] = {
    "left": (-1, 0), "right": (1, 0), "above": (0, 1), "below": (0, -1),
    "upper-left": (-1, 1), "upper-right": (1, 1), "lower-left": (-1, -1), "lower-right": (1, -1),
    "near": None, "far": None, "inside": None, "contains": None,
}
RELATIONS = tuple(RELATION_DIRECTIONS)
CONVERSE = {"left": "right", "right": "left", "above": "below", "below": "above",
            "upper-left": "lower-right", "lower-right": "upper-left", "upper-right": "lower-left",
            "lower-left": "upper-right", "near": "near", "far": "far", "inside": "contains", "contains": "inside"}
CATEGORIES = {"left": "horizontal", "right": "horizontal", "above": "vertical", "below": "vertical",
              "upper-left": "diagonal", "upper-right": "diagonal", "lower-left": "diagonal",
              "lower-right": "diagonal", "near": "proximity", "far": "proximity",
              "inside": "topological", "contains": "topological"}
#: Paraphrases of each relation, each usable after "is" and at the front of a sentence.
PHRASES = {
    "left": ("to the left of", "left of", "on the left side of"),
    "right": ("to the right of", "right of", "on the right side of"),
    "above": ("above", "over", "higher up than"),
    "below": ("below", "under", "lower down than"),
    "upper-left": ("above and to the left of", "diagonally up and left of", "to the upper left of"),
    "upper-right": ("above and to the right of", "diagonally up and right of", "to the upper right of"),
    "lower-left": ("below and to the left of", "diagonally down and left of", "to the lower left of"),
    "lower-right": ("below and to the right of", "diagonally down and right of", "to the lower right of"),
    "near": ("near", "close to", "next to"),
    "far": ("far from", "far away from", "a long way from"),
    "inside": ("inside", "within", "enclosed by"),
    "contains": ("around", "surrounding", "enclosing"),
}
#: Sentence frames; {p} is the relation phrase ({P} capitalised), {a} the subject and {b} the object.
#: Half name the subject first, half second; in all of them both noun phrases follow "the" and the
#: first one is followed by "is", so word bigrams tell which noun comes first but not which is the
#: subject (a bag of words cannot read argument roles off the frame).
TEMPLATES = ("The {a} is {p} the {b}.", "In this picture the {a} is {p} the {b}.", "Here the {a} is {p} the {b}.",
             "{P} the {b} is the {a}.", "In this picture, {p} the {b} is the {a}.", "Here, {p} the {b} is the {a}.")
#: Whether each template names the subject first (exactly half do).
SUBJECT_FIRST = tuple(t.index("{a}") < t.index("{b}") for t in TEMPLATES)
#: Subject-first templates (the converse-transfer twins use these).
SUBJECT_FIRST_TEMPLATES = tuple(t for t, first in enumerate(SUBJECT_FIRST) if first)
#: Chebyshev distance at or below which two objects are in the ``near`` bin.
NEAR_MAX = 1
VARIANTS = ("original", "swapped", "converse", "foil")


@dataclass(frozen=True)
class SceneObject:
    """One object: colour, shape, grid cell (x right, y up) and whether it is drawn large (a container)."""

    colour: str
    shape: str
    x: int
    y: int
    size: Literal["small", "normal", "large"] = "normal"

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def holds(relation: str, a: SceneObject, b: SceneObject) -> bool:
    """Whether ``a RELATION b`` is true in the scene geometry."""
    if relation == "inside":
        return a.size == "small" and b.size == "large" and (a.x, a.y) == (b.x, b.y)
    if relation == "contains":
        return holds("inside", b, a)
    if (a.x, a.y) == (b.x, b.y):
        return False
    dist = max(abs(a.x - b.x), abs(a.y - b.y))
    if relation == "near":
        return dist == 1
    if relation == "far":
        return dist >= 3
    dx, dy = RELATION_DIRECTIONS[relation]
    return ((a.x > b.x) - (a.x < b.x), (a.y > b.y) - (a.y < b.y)) == (dx, dy)


def _place(relation: str, rng: random.Random, a_obj: tuple[str, str], b_obj: tuple[str, str]
           ) -> tuple[SceneObject, SceneObject]:
    """Place two objects so that ``a RELATION b`` holds (rejection sampling on the grid)."""
    (ca, sa), (cb, sb) = a_obj, b_obj
    if relation in ("inside", "contains"):
        x, y = rng.randrange(GRID), rng.randrange(GRID)
        inner, outer = ((ca, sa), (cb, sb)) if relation == "inside" else ((cb, sb), (ca, sa))
        small = SceneObject(inner[0], inner[1], x, y, "small")
        large = SceneObject(outer[0], outer[1], x, y, "large")
        return (small, large) if relation == "inside" else (large, small)
    for _ in range(1000):
        a = SceneObject(ca, sa, rng.randrange(GRID), rng.randrange(GRID))
        b = SceneObject(cb, sb, rng.randrange(GRID), rng.randrange(GRID))
        if holds(relation, a, b):
            return a, b
    raise RuntimeError(f"could not place a scene for {relation!r}")  # unreachable on a 5×5 grid


def _caption(relation: str, a: str, b: str, t: int, p: int) -> str:
    phrase = PHRASES[relation][p]
    return TEMPLATES[t].format(a=a, b=b, p=phrase, P=phrase[0].upper() + phrase[1:])


def geometry(subject: SceneObject, obj: SceneObject) -> dict[str, int | str]:
    """Scene geometry of ``subject`` relative to ``obj``: dx, dy, Chebyshev distance and its near/far bin."""
    dx, dy = subject.x - obj.x, subject.y - obj.y
    distance = max(abs(dx), abs(dy))
    return {"dx": dx, "dy": dy, "distance": distance, "distance_bin": "near" if distance <= NEAR_MAX else "far"}


def _balanced_flags(n: int, rng: random.Random) -> list[bool]:
    """``n`` booleans in random order, exactly half True (for odd ``n`` the odd one is True or False at random)."""
    flags = [i % 2 == 0 for i in range(n)]
    if n % 2:
        flags[-1] = rng.random() < 0.5
    rng.shuffle(flags)
    return flags


def _foil(relation: str, a: SceneObject, b: SceneObject, rng: random.Random) -> str:
    """A relation false of (a, b), from the same category when there is one."""
    foils = [r for r in RELATIONS if not holds(r, a, b) and CATEGORIES[r] == CATEGORIES[relation]] or \
            [r for r in RELATIONS if not holds(r, a, b)]
    return rng.choice(foils)


def _family(scene_id: str, group: str, split: str, relation: str, a: SceneObject, b: SceneObject, t: int, p: int,
            foil: str, seed: int, origin: str) -> list[Example]:
    """The four caption variants of one scene, all in template ``t`` with phrase index ``p``."""
    specs = {
        "original": (relation, a, b),
        "swapped": (relation, b, a),
        "converse": (CONVERSE[relation], b, a),
        "foil": (foil, a, b),
    }
    scene = {"objects": [asdict(a), asdict(b)], "seed": seed}
    out = []
    for variant, (rel, subj, obj) in specs.items():
        out.append(Example(
            id=f"synthetic/{seed}/{scene_id}/{variant}", dataset="synthetic", split=split,
            text=_caption(rel, subj.name, obj.name, t, p), relation=rel, category=CATEGORIES[rel],
            subject=subj.name, object=obj.name, truth=holds(rel, subj, obj), image=f"synthetic:{scene_id}",
            group=group, variant=variant, pair_id=scene_id, origin=f"{origin}#{scene_id}",
            source={"scene": scene, "template": t, "phrase": p, "subject_first": SUBJECT_FIRST[t],
                    "scene_relation": relation, **geometry(subj, obj)},
        ))
    return out


def _split_of(scene_id: str, seed: int, objects: tuple[SceneObject, SceneObject],
              scheme: str, heldout: set[tuple[str, str]]) -> str:
    if scheme == "compositional":
        return "test" if any((o.colour, o.shape) in heldout for o in objects) else "train"
    h = int(hashlib.sha256(f"{seed}:{scene_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if h < 0.7 else "dev" if h < 0.85 else "test"


def heldout_combinations(seed: int) -> set[tuple[str, str]]:
    """For the compositional split: one colour per shape seen only at test time."""
    rng = random.Random(f"heldout:{seed}")
    colours = list(COLOURS)
    return {(colours[(i + rng.randrange(len(colours))) % len(colours)], s) for i, s in enumerate(SHAPES)}


def generate(n_scenes: int = 480, seed: int = 0, *, split_scheme: Literal["random", "compositional"] = "random",
             relations: tuple[str, ...] = RELATIONS) -> list[Example]:
    """Generate ``n_scenes`` scenes (relations balanced) and their caption variants.

    ``split_scheme="random"`` assigns scenes to train/dev/test 70/15/15 by a seeded hash;
    ``"compositional"`` puts every scene with a held-out colour–shape combination into test,
    so a probe is evaluated on objects it never saw during training.
    """
    if n_scenes < 1:
        raise DataError(f"n_scenes must be ≥ 1, got {n_scenes}")
    unknown = [r for r in relations if r not in RELATION_DIRECTIONS]
    if unknown:
        raise DataError(f"unknown synthetic relation(s) {unknown}; expected some of {list(RELATIONS)}")
    rng = random.Random(seed)
    heldout = heldout_combinations(seed)
    counts = {r: len(range(k, n_scenes, len(relations))) for k, r in enumerate(relations)}
    first = {r: _balanced_flags(counts[r], rng) for r in relations}
    sf_templates = [t for t, f in enumerate(SUBJECT_FIRST) if f]
    ss_templates = [t for t, f in enumerate(SUBJECT_FIRST) if not f]
    out: list[Example] = []
    for i in range(n_scenes):
        relation = relations[i % len(relations)]
        pool = [(c, s) for c in COLOURS for s in SHAPES]
        a_obj, b_obj = rng.sample(pool, 2)
        if relation in ("inside", "contains"):  # the enclosing object must be drawable as a container
            outer = b_obj if relation == "inside" else a_obj
            outer = (outer[0], rng.choice(CONTAINERS))
            a_obj, b_obj = (a_obj, outer) if relation == "inside" else (outer, b_obj)
            if a_obj == b_obj:
                b_obj = (next(c for c in COLOURS if c != a_obj[0]), b_obj[1])
        a, b = _place(relation, rng, a_obj, b_obj)
        scene_id = f"scene{i:05d}"
        split = _split_of(scene_id, seed, (a, b), split_scheme, heldout)
        t = rng.choice(sf_templates if first[relation][i // len(relations)] else ss_templates)
        p = rng.randrange(len(PHRASES[relation]))
        out += _family(scene_id, scene_id, split, relation, a, b, t, p, _foil(relation, a, b, rng), seed,
                       f"synthetic(seed={seed})")
    return out


#: Converse pairs of the converse-transfer design: (member trained on, member tested on).
TWIN_PAIRS = (("left", "right"), ("above", "below"), ("upper-left", "lower-right"), ("upper-right", "lower-left"),
              ("inside", "contains"))


def generate_converse_twins(n_twins: int = 240, seed: int = 0) -> list[Example]:
    """Twin scenes for converse transfer, deterministic by seed.

    Twin k holds two scenes with the same geometry and the same shape twice in two colours,
    exchanged between the twins ("the red circle is left of the blue circle" / "the blue circle is
    left of the red circle"), captioned in one subject-first template (:data:`SUBJECT_FIRST_TEMPLATES`) with
    one phrase.
    So every caption's word unigrams and bigrams (counted with or without "a"/"the") occur in its
    twin with the opposite geometric fact: a bag of words is at chance by construction. Relations
    cycle through :data:`TWIN_PAIRS` (both members, so each is the scene relation as often); the
    twins share a ``group`` and go to train or test (50/50 by a seeded hash), never both.
    """
    if n_twins < 1:
        raise DataError(f"n_twins must be ≥ 1, got {n_twins}")
    rng = random.Random(f"twins:{seed}")
    relations = [r for pair in TWIN_PAIRS for r in pair]
    out: list[Example] = []
    for k in range(n_twins):
        relation = relations[k % len(relations)]
        shape = rng.choice(CONTAINERS if relation in ("inside", "contains") else SHAPES)
        c1, c2 = rng.sample(list(COLOURS), 2)
        a, b = _place(relation, rng, (c1, shape), (c2, shape))
        group = f"twin{k:05d}"
        h = int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        split = "train" if h < 0.5 else "test"
        t, p = rng.choice(SUBJECT_FIRST_TEMPLATES), rng.randrange(len(PHRASES[relation]))
        twin_a = SceneObject(c2, shape, a.x, a.y, a.size)
        twin_b = SceneObject(c1, shape, b.x, b.y, b.size)
        foil = _foil(relation, a, b, rng)  # same geometry in both twins: the foil is false in both
        for suffix, (x, y) in (("a", (a, b)), ("b", (twin_a, twin_b))):
            out += _family(f"{group}{suffix}", group, split, relation, x, y, t, p, foil, seed,
                           f"synthetic-twins(seed={seed})")
    return out


def _draw(draw: ImageDraw.ImageDraw, o: SceneObject) -> None:
    pad = (CANVAS - GRID * CELL) // 2
    cx = pad + o.x * CELL + CELL / 2
    cy = pad + (GRID - 1 - o.y) * CELL + CELL / 2  # y grows upwards in scene space
    r = {"small": CELL * 0.2, "normal": CELL * 0.38, "large": CELL * 0.48}[o.size]
    colour = COLOURS[o.colour]
    fill, outline, width = (None, colour, 4) if o.size == "large" else (colour, colour, 1)
    box = (cx - r, cy - r, cx + r, cy + r)
    if o.shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif o.shape == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    elif o.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill, outline=outline, width=width)
    elif o.shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill, outline=outline,
                     width=width)
    elif o.shape == "star":
        points = [(cx + rad * math.sin(math.pi * i / 5), cy - rad * math.cos(math.pi * i / 5))
                  for i, rad in zip(range(10), [r, r * 0.45] * 5)]
        draw.polygon(points, fill=fill, outline=outline, width=width)
    elif o.shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill, outline=outline)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill, outline=outline)


def render(example: Example) -> Image.Image:
    """Render the scene behind a synthetic example as a 224×224 RGB image (deterministic)."""
    scene = example.source.get("scene")
    if example.dataset != "synthetic" or not scene:
        raise DataError(f"{example.id}: not a synthetic example with a scene spec in source['scene']")
    img = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(img)
    objects = sorted((SceneObject(**o) for o in scene["objects"]), key=lambda o: o.size != "large")
    for o in objects:  # containers first, so the small object is drawn on top
        _draw(draw, o)
    return img


def write_images(examples: list[Example], image_dir: str | Path) -> int:
    """Render each distinct scene once to ``image_dir/<scene>.png``; returns how many were written."""
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for ex in {e.image: e for e in examples if e.image}.values():
        path = image_dir / f"{ex.image.split(':', 1)[1]}.png"
        if not path.exists():
            render(ex).save(path)
            written += 1
    return written
