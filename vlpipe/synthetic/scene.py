"""Scenes of the synthetic world and the grammar that describes them.

A scene is a plain background with one or two objects; each object has a colour, a shape, a
size and one action (``ACTIONS``). Everything here is pure sampling from a
``numpy.random.Generator``: ``render.py`` turns a scene into frames and audio deterministically,
and ``describe`` turns it into sentences that name only what is rendered.

The first object of a scene is the salient one: its action always changes its appearance
(``APPEARANCE_ACTIONS``), so every clip carries signal that globally pooled frame features see.
A second object may also just move (``move``, ``bounce``) or stay still.

In a story (``world.py``'s ``story_length``), a later clip keeps the previous clip's background
and may carry its salient object (colour, shape and size, with a new action); its sentences
start "then" (or "next", "after that") and name a carried object with the definite article
("then the red star spins on a blue background"), a new one as any ("then a big blue circle
appears …"): sentences that only the clip and its predecessor together tell.

With a cast (CiSIN's world, ``world.py``'s ``cast``), a story's objects are its recurring
characters (`Character`: a fixed colour, shape and size, and a gender the pictures do not show)
doing new actions in every clip (`sample_cast_scene`), and `describe_characters` writes each clip's
sentence as LSMDC 2019 writes characters: every one a ``SOMEONE``, some with a description that
gives away part of who it is ("SOMEONE in red", "SOMEONE in her red coat").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "orange": (245, 140, 20), "yellow": (240, 220, 40),
    "green": (40, 170, 60), "cyan": (40, 200, 210), "blue": (40, 80, 210),
    "purple": (130, 50, 170), "pink": (240, 130, 190), "brown": (120, 75, 35),
    "white": (240, 240, 240), "gray": (128, 128, 128), "black": (20, 20, 20),
}
BACKGROUNDS = ("black", "white", "gray", "blue", "green", "brown")
MIN_CONTRAST = 120.0  # RGB distance between any two colours of one scene
SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "medium", "large")
# Nominal radius as a fraction of the frame side; a lone object is drawn LONE_SCALE times larger.
# Objects are large so that globally pooled CNN features (even random ones) see their colour.
RADIUS = {"small": 0.12, "medium": 0.16, "large": 0.21}
LONE_SCALE = 1.4
TWO_OBJECT_PROB = 0.5

APPEARANCE_ACTIONS = ("grow", "shrink", "blink", "appear", "disappear", "spin", "recolor")
ACTIONS = (*APPEARANCE_ACTIONS, "move", "bounce", "static")
SIZES_FOR = {"grow": ("small", "medium"), "shrink": ("medium", "large")}
SHAPES_FOR = {"spin": ("square", "triangle", "star", "cross")}  # a spinning circle is invisible
GROW_SCALE, SHRINK_SCALE = 1.7, 0.45

# Only second objects move, so the trips are vertical and stay in their half of the frame.
DIRECTIONS = {"up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class Action:
    """What an object does. Times are in seconds; unused fields keep their defaults.

    ``start``/``end`` bound a gradual change (grow, shrink, move) or hold the time of an instant
    one (appear, disappear, recolor: ``start == end``). ``events`` lists the times of discrete
    visible changes (blink onsets, bounce impacts, the instant of appear/disappear/recolor);
    the audio marks each of them.
    """

    name: str
    start: float = 0.0
    end: float = 0.0
    period: float = 0.0  # blink / bounce period
    scale: float = 1.0  # grow / shrink: radius at ``end`` relative to the initial radius
    turns: float = 0.0  # spin: turns per second, signed (positive = clockwise on screen)
    direction: str = ""  # move: a key of DIRECTIONS
    distance: float = 0.0  # move: travel; bounce: jump height (fractions of the frame side)
    colour: str = ""  # recolor: the new colour
    events: tuple[float, ...] = ()


@dataclass(frozen=True)
class SceneObject:
    """One object; ``centre`` and ``radius`` are fractions of the frame side at t = 0."""

    colour: str
    shape: str
    size: str
    radius: float
    centre: tuple[float, float]
    angle: float  # initial rotation, degrees
    action: Action


@dataclass(frozen=True)
class Scene:
    """A clip's ground truth: a background colour and one or two objects (salient one first)."""

    background: str
    duration: float
    objects: tuple[SceneObject, ...]

    def colours(self) -> set[str]:
        """Every colour that appears in the clip at some time."""
        named = {self.background}
        for obj in self.objects:
            named |= {obj.colour, obj.action.colour} - {""}
        return named

    def to_dict(self) -> dict:
        """JSON-ready ground truth, with the RGB value of every colour name used."""
        out = asdict(self)
        out["rgb"] = {name: list(COLOURS[name]) for name in sorted(self.colours())}
        return out


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """A uniformly drawn element of ``options`` (the element itself, not a numpy scalar)."""
    return options[int(rng.integers(len(options)))]


def _pick_colour(rng: np.random.Generator, used: list[str]) -> str:
    """A colour with enough contrast to every colour already in the scene."""
    options = [c for c in COLOURS
               if all(np.linalg.norm(np.subtract(COLOURS[c], COLOURS[u])) >= MIN_CONTRAST
                      for u in used)]
    return _pick(rng, options)


def _periodic_times(period: float, duration: float, first: int) -> tuple[float, ...]:
    count = int(np.ceil(duration / period - 1e-9))
    return tuple(round(k * period, 4) for k in range(first, count))


def _sample_action(rng: np.random.Generator, name: str, duration: float,
                   used: list[str]) -> Action:
    """Parameters for action ``name``; may add a recolor target to ``used``."""
    def at(lo: float, hi: float) -> float:
        return round(float(rng.uniform(lo, hi)) * duration, 4)

    if name in ("grow", "shrink"):
        scale = GROW_SCALE if name == "grow" else SHRINK_SCALE
        return Action(name, start=at(0.0, 0.2), end=at(0.7, 1.0), scale=scale)
    if name == "blink":
        period = round(float(rng.uniform(0.5, 0.8)), 4)
        return Action(name, period=period, events=_periodic_times(period, duration, 0))
    if name in ("appear", "disappear", "recolor"):
        t = at(0.25, 0.6) if name == "appear" else at(0.4, 0.75)
        colour = ""
        if name == "recolor":
            colour = _pick_colour(rng, used)
            used.append(colour)
        return Action(name, start=t, end=t, colour=colour, events=(t,))
    if name == "spin":
        turns = float(rng.uniform(0.3, 0.8)) * _pick(rng, (-1.0, 1.0))
        return Action(name, end=duration, turns=round(turns, 4))
    if name == "move":
        return Action(name, end=duration, direction=_pick(rng, tuple(DIRECTIONS)), distance=0.25)
    if name == "bounce":
        period = round(float(rng.uniform(0.5, 0.8)), 4)
        return Action(name, period=period, distance=0.15,
                      events=_periodic_times(period, duration, 1))
    return Action(name)


def _sample_object(rng: np.random.Generator, name: str, slot: tuple[float, float], lone: bool,
                   duration: float, used: list[str],
                   look: tuple[str, str, str] | None = None) -> SceneObject:
    """An object doing ``name`` at ``slot``; ``look``: the colour, shape and size it keeps (a
    carried object's, a character's)."""
    if look is None:
        shape = _pick(rng, SHAPES_FOR.get(name, SHAPES))
        size = _pick(rng, SIZES_FOR.get(name, SIZES))
        colour = _pick_colour(rng, used)
    else:
        colour, shape, size = look
    used.append(colour)
    action = _sample_action(rng, name, duration, used)
    x, y = (float(v + rng.uniform(-0.02, 0.02)) for v in slot)
    if action.name == "move":  # start half a trip back so the trip is centred on the slot
        dx, dy = DIRECTIONS[action.direction]
        x, y = x - dx * action.distance / 2, y - dy * action.distance / 2
    elif action.name == "bounce":  # rest below the slot, jump above it
        y += action.distance / 2
    radius = RADIUS[size] * (LONE_SCALE if lone else 1.0)
    return SceneObject(colour=colour, shape=shape, size=size, radius=round(radius, 4),
                       centre=(round(x, 4), round(y, 4)),
                       angle=round(float(rng.uniform(0.0, 360.0)), 2), action=action)


def carried_actions(obj: SceneObject | Character) -> tuple[str, ...]:
    """The appearance actions an object of this shape and size can do."""
    return tuple(name for name in APPEARANCE_ACTIONS
                 if obj.shape in SHAPES_FOR.get(name, SHAPES)
                 and obj.size in SIZES_FOR.get(name, SIZES))


def _end_look(obj: SceneObject) -> tuple[str, str, str]:
    """How an object looks at the end of its clip: its colour then, its shape and size."""
    return obj.action.colour or obj.colour, obj.shape, obj.size


def sample_scene(rng: np.random.Generator, duration: float, background: str | None = None,
                 carry: SceneObject | None = None) -> Scene:
    """Sample a background and one or two objects, the first with an appearance-changing action.
    In a story: ``background`` is the previous clip's, ``carry`` its salient object, continued
    here as the salient one (`_sample_object`)."""
    background = background or _pick(rng, BACKGROUNDS)
    used = [background]
    lone = rng.random() >= TWO_OBJECT_PROB
    slots = [(0.5, 0.5)] if lone else [(0.27, 0.5), (0.73, 0.5)]
    if rng.random() < 0.5:  # the salient object goes left or right
        slots.reverse()
    names = [_pick(rng, APPEARANCE_ACTIONS if carry is None else carried_actions(carry))]
    if not lone:
        names.append(_pick(rng, ACTIONS))
    looks = (None if carry is None else _end_look(carry), None)
    objects = tuple(_sample_object(rng, name, slot, lone, duration, used, look)
                    for name, slot, look in zip(names, slots, looks, strict=False))
    return Scene(background=background, duration=duration, objects=objects)


GENDERS = ("female", "male")
CHARACTER_ACTIONS = tuple(name for name in ACTIONS if name != "recolor")  # keeps the look


@dataclass(frozen=True)
class Character:
    """A recurring character of a story: always drawn with the same colour, shape and size;
    ``name`` is unique within the world, ``gender`` shows only in the sentences."""

    name: str
    colour: str
    shape: str
    size: str
    gender: str


def sample_cast(rng: np.random.Generator, count: int,
                story: int) -> tuple[str, tuple[Character, ...]]:
    """Story ``story``'s background and its ``count`` characters, their colours in contrast to
    the background and to each other (the colour tells a story's characters apart, in the
    pictures and where a sentence describes them; shapes and sizes may repeat)."""
    background = _pick(rng, BACKGROUNDS)
    used = [background]
    cast = []
    for k in range(count):
        colour = _pick_colour(rng, used)
        used.append(colour)
        cast.append(Character(name=f"story{story}_character{k}", colour=colour,
                              shape=_pick(rng, SHAPES), size=_pick(rng, SIZES),
                              gender=_pick(rng, GENDERS)))
    return background, tuple(cast)


def _character_actions(member: Character, salient: bool) -> tuple[str, ...]:
    """What a character may do: the salient one an appearance action its look allows, another
    also a move, a bounce or nothing; never a recolour (a character keeps its look)."""
    allowed = carried_actions(member)
    return tuple(name for name in CHARACTER_ACTIONS
                 if name in allowed or (not salient and name not in APPEARANCE_ACTIONS))


def sample_cast_scene(rng: np.random.Generator, duration: float, background: str,
                      cast: Sequence[Character]) -> tuple[Scene, tuple[Character, ...]]:
    """One clip of a story with a cast: one or two of its characters (the salient one doing an
    appearance action, any other any action their look allows, never a recolour), and which
    characters the scene's objects are, in order."""
    lone = len(cast) == 1 or rng.random() >= TWO_OBJECT_PROB
    members = [cast[int(k)] for k in rng.permutation(len(cast))[: 1 if lone else 2]]
    slots = [(0.5, 0.5)] if lone else [(0.27, 0.5), (0.73, 0.5)]
    if rng.random() < 0.5:
        slots.reverse()
    names = [_pick(rng, _character_actions(member, salient=k == 0))
             for k, member in enumerate(members)]
    used = [background]
    objects = tuple(_sample_object(rng, name, slot, lone, duration, used,
                                   (member.colour, member.shape, member.size))
                    for name, slot, member in zip(names, slots, members, strict=True))
    return Scene(background=background, duration=duration, objects=objects), tuple(members)


# ---------------------------------------------------------------------------------------------
# Grammar: every sentence names the background colour and each object's colour, shape, size
# (small/large; medium is left unsaid) and action. Synonyms and templates give paraphrases.

SIZE_WORDS = {"small": ("small", "little"), "medium": ("",), "large": ("large", "big")}
VERB_PHRASES = {
    "grow": ("grows", "gets bigger", "expands", "grows larger"),
    "shrink": ("shrinks", "gets smaller", "shrinks in size"),
    "blink": ("blinks", "flashes", "flickers", "blinks on and off"),
    "appear": ("appears", "shows up", "pops up"),
    "disappear": ("disappears", "vanishes", "goes away"),
    "spin": ("spins", "rotates", "turns around", "spins around"),
    "recolor": ("turns {colour}", "becomes {colour}", "changes to {colour}",
                "changes color to {colour}"),
    "move": ("moves {direction}", "slides {direction}", "drifts {direction}"),
    "bounce": ("bounces", "bounces up and down", "jumps up and down", "hops"),
    "static": ("stays still", "sits still"),
}
BACKGROUND_PHRASES = ("on {a} {colour} background", "against {a} {colour} backdrop",
                      "in front of {a} {colour} background")
ONE_OBJECT_TEMPLATES = ("{o1} {v1} {bg}", "{bg} {o1} {v1}", "{o1} {bg} {v1}",
                        "{bg} there is {o1} that {v1}")
TWO_OBJECT_TEMPLATES = ("{o1} {v1} while {o2} {v2} {bg}", "{bg} {o1} {v1} while {o2} {v2}",
                        "{o1} {v1} and {o2} {v2} {bg}", "{bg} {o1} {v1} and {o2} {v2}")
STORY_OPENINGS = ("then", "next", "after that")  # a story's later sentences start so


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(rng: np.random.Generator, obj: SceneObject) -> str:
    words = [w for w in (_pick(rng, SIZE_WORDS[obj.size]), obj.colour, obj.shape) if w]
    return " ".join([_article(words[0]), *words])


def _verb_phrase(rng: np.random.Generator, action: Action) -> str:
    return _pick(rng, VERB_PHRASES[action.name]).format(colour=action.colour,
                                                        direction=action.direction)


def describe(scene: Scene, rng: np.random.Generator, salient_only: bool = False,
             follows: bool | None = None) -> str:
    """One sentence (lower case, no punctuation) that states exactly what the scene shows; with
    ``salient_only``, what it shows of the salient object and the background only (a one-object
    template whatever the scene holds: the distractor goes unsaid). ``follows`` (a story's
    later clip): the same sentence after an opening ("then …"), the salient object named "the
    <colour> <shape>" where it follows the previous clip's (True), as any object where it is
    new (False)."""
    def noun(index: int) -> str:
        phrase, obj = _noun_phrase(rng, scene.objects[index]), scene.objects[index]
        return f"the {obj.colour} {obj.shape}" if follows and index == 0 else phrase

    sentence, _ = _sentence(scene, rng, 1 if salient_only else len(scene.objects), noun)
    return sentence if follows is None else f"{_pick(rng, STORY_OPENINGS)} {sentence}"


def _sentence(scene: Scene, rng: np.random.Generator, objects: int,
              noun: Callable[[int], str]) -> tuple[str, list[int]]:
    """A template filled with the background and the scene's first ``objects`` objects (in a
    random order), each named by ``noun(index)`` and doing its action; and that order."""
    order = list(range(objects))
    if objects == 2 and rng.random() < 0.5:
        order.reverse()
    parts = {"bg": _pick(rng, BACKGROUND_PHRASES).format(a=_article(scene.background),
                                                         colour=scene.background)}
    for k, index in enumerate(order, start=1):
        parts[f"o{k}"] = noun(index)
        parts[f"v{k}"] = _verb_phrase(rng, scene.objects[index].action)
    templates = ONE_OBJECT_TEMPLATES if len(order) == 1 else TWO_OBJECT_TEMPLATES
    return _pick(rng, templates).format(**parts), order


def describe_many(scene: Scene, rng: np.random.Generator, count: int,
                  attempts: int = 50, salient_only: bool = False,
                  follows: bool | None = None) -> list[str]:
    """``count`` sentences for one scene, distinct paraphrases where the grammar allows it
    (``salient_only``, ``follows``: see ``describe``)."""
    sentences: list[str] = []
    for _ in range(attempts):
        sentence = describe(scene, rng, salient_only, follows)
        if sentence not in sentences:
            sentences.append(sentence)
        if len(sentences) == count:
            return sentences
    return [sentences[k % len(sentences)] for k in range(count)]


MENTION = "SOMEONE"  # how LSMDC 2019 writes a character
DESCRIBED_PROB = 0.5  # a mention comes with a description of the character
GENDERED_PROB = 0.5  # ... which names the character's gender ("in her red coat")
POSSESSIVES = {"female": "her", "male": "his"}


def _mention(rng: np.random.Generator, character: Character) -> str:
    """``SOMEONE``, alone or with a description: its colour, and sometimes its gender."""
    if rng.random() >= DESCRIBED_PROB:
        return MENTION
    if rng.random() < GENDERED_PROB:
        return f"{MENTION} in {POSSESSIVES[character.gender]} {character.colour} coat"
    return f"{MENTION} in {character.colour}"


def describe_characters(scene: Scene, members: Sequence[Character],
                        rng: np.random.Generator) -> tuple[str, list[str]]:
    """A sentence of the clip in which each character is a ``SOMEONE`` (LSMDC 2019's Fill-in
    the Characters), and the characters' names in the order of their mentions."""
    sentence, order = _sentence(scene, rng, len(scene.objects),
                                lambda index: _mention(rng, members[index]))
    return sentence, [members[i].name for i in order]


def vocabulary() -> set[str]:
    """Every word the grammar's captions can produce (`describe`; not the mentions of
    `describe_characters`)."""
    texts = [*COLOURS, *SHAPES, "a an the there is that while and", *STORY_OPENINGS,
             *(w for words in SIZE_WORDS.values() for w in words),
             *(p for phrases in VERB_PHRASES.values() for p in phrases),
             *BACKGROUND_PHRASES, *DIRECTIONS]
    words = {w for text in texts for w in text.split()}
    return {w for w in words if not w.startswith("{")}
