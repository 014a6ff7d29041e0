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
#: Sentence frames; {p} is the relation phrase, {a} the subject and {b} the object.
TEMPLATES = ("The {a} is {p} the {b}.", "A {a} is {p} a {b}.", "There is a {a} {p} the {b}.",
             "{P} the {b} is a {a}.", "In this picture the {a} is {p} the {b}.")
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


def _caption(relation: str, a: str, b: str, rng: random.Random) -> tuple[str, int, int]:
    t, p = rng.randrange(len(TEMPLATES)), rng.randrange(len(PHRASES[relation]))
    phrase = PHRASES[relation][p]
    text = TEMPLATES[t].format(a=a, b=b, p=phrase, P=phrase[0].upper() + phrase[1:])
    return text, t, p


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
        foils = [r for r in RELATIONS if not holds(r, a, b) and CATEGORIES[r] == CATEGORIES[relation]] or \
                [r for r in RELATIONS if not holds(r, a, b)]
        specs = {
            "original": (relation, a, b),
            "swapped": (relation, b, a),
            "converse": (CONVERSE[relation], b, a),
            "foil": (rng.choice(foils), a, b),
        }
        scene = {"objects": [asdict(a), asdict(b)], "seed": seed}
        for variant, (rel, subj, obj) in specs.items():
            text, t, p = _caption(rel, subj.name, obj.name, rng)
            out.append(Example(
                id=f"synthetic/{seed}/{scene_id}/{variant}", dataset="synthetic", split=split, text=text,
                relation=rel, category=CATEGORIES[rel], subject=subj.name, object=obj.name,
                truth=holds(rel, subj, obj), image=f"synthetic:{scene_id}", group=scene_id, variant=variant,
                pair_id=scene_id, origin=f"synthetic(seed={seed})#{scene_id}",
                source={"scene": scene, "template": t, "phrase": p, "scene_relation": relation},
            ))
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
