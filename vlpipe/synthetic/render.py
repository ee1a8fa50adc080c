"""Render a scene to RGB frames and a mono waveform (pure numpy, deterministic).

Shapes are drawn from signed distance functions with one pixel of anti-aliasing. The audio
mirrors the picture: each visible object hums at a pitch set by its shape; growing raises and
shrinking lowers that pitch, spinning makes it pulse, and each discrete event (blink onset,
bounce impact, appear, disappear, colour change) adds a short beep over a quiet noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlpipe.synthetic.scene import COLOURS, DIRECTIONS, Action, Scene, SceneObject

SHAPE_PITCH = {"circle": 262.0, "square": 330.0, "triangle": 392.0, "star": 523.0, "cross": 440.0}
SYMMETRY = {"circle": 1, "square": 4, "triangle": 3, "star": 5, "cross": 4}  # spin pulses per turn
TONE_LEVEL, BEEP_LEVEL, NOISE_LEVEL = 0.08, 0.25, 0.003
BEEP_SECONDS = 0.1


def _regular_polygon(n: int, radius: float, phase_deg: float = -90.0) -> np.ndarray:
    angles = np.radians(phase_deg + 360.0 * np.arange(n) / n)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _box(half_w: float, half_h: float) -> np.ndarray:
    return np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])


def _half_planes(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit normals and offsets of a convex polygon (inside: ``normals @ p <= offsets``)."""
    edges = np.roll(vertices, -1, axis=0) - vertices
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = np.einsum("kd,kd->k", normals, vertices)
    flip = offsets < normals @ vertices.mean(axis=0)  # normal points inwards
    return np.where(flip[:, None], -normals, normals), np.where(flip, -offsets, offsets)


def _star_pieces() -> list[np.ndarray]:
    outer = _regular_polygon(5, 1.3)
    inner = _regular_polygon(5, 0.55, -90.0 + 36.0)
    tips = [np.stack([inner[i - 1], outer[i], inner[i]]) for i in range(5)]
    return [inner, *tips]


# Each non-circular shape is a union of convex pieces, in units of the object's radius.
PIECES = {
    shape: [_half_planes(piece) for piece in pieces]
    for shape, pieces in {
        "square": [_box(0.8, 0.8)],
        "triangle": [_regular_polygon(3, 1.3)],
        "star": _star_pieces(),
        "cross": [_box(1.0, 0.33), _box(0.33, 1.0)],
    }.items()
}
EXTENT = {"circle": 1.0, "square": 0.8 * np.sqrt(2.0), "triangle": 1.3, "star": 1.3,
          "cross": float(np.hypot(1.0, 0.33))}


@dataclass(frozen=True)
class ObjectState:
    """An object as drawn at one instant (positions and radius in fractions of the frame side)."""

    centre: tuple[float, float]
    radius: float
    angle: float
    colour: str
    opacity: float


def _progress(action: Action, t: np.ndarray) -> np.ndarray:
    """0 before ``action.start``, 1 after ``action.end``, linear in between."""
    if action.end <= action.start:
        return (t >= action.start).astype(float)
    return np.clip((t - action.start) / (action.end - action.start), 0.0, 1.0)


def opacity(obj: SceneObject, t: np.ndarray) -> np.ndarray:
    """1 where the object is visible at times ``t``, else 0."""
    action = obj.action
    if action.name == "blink":
        return (np.mod(t, action.period) < action.period / 2).astype(float)
    if action.name == "appear":
        return (t >= action.start).astype(float)
    if action.name == "disappear":
        return (t < action.start).astype(float)
    return np.ones_like(t, dtype=float)


def _size_factor(action: Action, t: np.ndarray) -> np.ndarray:
    if action.name not in ("grow", "shrink"):
        return np.ones_like(t, dtype=float)
    return 1.0 + (action.scale - 1.0) * _progress(action, t)


def object_state(obj: SceneObject, t: float) -> ObjectState:
    """Where and how ``obj`` is drawn at time ``t`` (seconds)."""
    action, tt = obj.action, np.asarray(t, float)
    x, y = obj.centre
    if action.name == "move":
        dx, dy = DIRECTIONS[action.direction]
        step = action.distance * float(_progress(action, tt))
        x, y = x + dx * step, y + dy * step
    elif action.name == "bounce":
        y -= action.distance * abs(np.sin(np.pi * t / action.period))
    recoloured = action.name == "recolor" and t >= action.start
    return ObjectState(centre=(float(x), float(y)),
                       radius=obj.radius * float(_size_factor(action, tt)),
                       angle=obj.angle + 360.0 * action.turns * t,
                       colour=action.colour if recoloured else obj.colour,
                       opacity=float(opacity(obj, tt)))


def _unit_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to ``shape`` of radius 1 centred at the origin."""
    if shape == "circle":
        return np.hypot(u, v) - 1.0
    points = np.stack([u, v], axis=-1)
    return np.min([np.max(points @ normals.T - offsets, axis=-1)
                   for normals, offsets in PIECES[shape]], axis=0)


def _draw(canvas: np.ndarray, shape: str, state: ObjectState) -> None:
    """Alpha-blend one object into ``canvas`` (H×W×3 float) in place."""
    if state.opacity <= 0:
        return
    size = canvas.shape[0]
    cx, cy, r = state.centre[0] * size, state.centre[1] * size, state.radius * size
    reach = EXTENT[shape] * r + 1.0
    x0, x1 = max(int(cx - reach), 0), min(int(np.ceil(cx + reach)) + 1, size)
    y0, y1 = max(int(cy - reach), 0), min(int(np.ceil(cy + reach)) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    theta = np.radians(state.angle)  # rotate the pixel grid back into the shape's frame
    dx, dy = xs - cx, ys - cy
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    alpha = np.clip(0.5 - _unit_sdf(shape, u / r, v / r) * r, 0.0, 1.0) * state.opacity
    patch = canvas[y0:y1, x0:x1]
    patch += alpha[..., None] * (np.asarray(COLOURS[state.colour], float) - patch)


def render_frame(scene: Scene, t: float, size: int) -> np.ndarray:
    """The frame at time ``t`` as a ``size``×``size``×3 uint8 RGB array."""
    canvas = np.empty((size, size, 3), float)
    canvas[:] = COLOURS[scene.background]
    for obj in scene.objects:
        _draw(canvas, obj.shape, object_state(obj, t))
    return np.rint(canvas).astype(np.uint8)


def frame_times(duration: float, fps: int) -> np.ndarray:
    """Timestamps (seconds) of the ``round(duration * fps)`` frames of a clip."""
    return np.arange(round(duration * fps)) / fps


def render_frames(scene: Scene, fps: int, size: int) -> np.ndarray:
    """All frames of the clip, T×size×size×3 uint8, T = round(duration · fps)."""
    return np.stack([render_frame(scene, t, size) for t in frame_times(scene.duration, fps)])


def _beep(t: np.ndarray, onset: float, f0: float, f1: float) -> np.ndarray:
    """A Hann-windowed chirp from ``f0`` to ``f1`` Hz lasting ``BEEP_SECONDS`` from ``onset``."""
    tau = t - onset
    inside = (tau >= 0) & (tau < BEEP_SECONDS)
    phase = 2 * np.pi * (f0 * tau + (f1 - f0) * tau**2 / (2 * BEEP_SECONDS))
    return np.where(inside, np.sin(np.pi * tau / BEEP_SECONDS) ** 2 * np.sin(phase), 0.0)


def _event_sweep(action: Action, pitch: float) -> tuple[float, float]:
    """Start and end frequency of the beep marking one of ``action``'s events."""
    return {"blink": (2 * pitch, 2 * pitch), "bounce": (180.0, 90.0),
            "appear": (2 * pitch, 4 * pitch), "disappear": (4 * pitch, 2 * pitch),
            "recolor": (2 * pitch, 3 * pitch)}[action.name]


def _object_audio(obj: SceneObject, t: np.ndarray, rate: int) -> np.ndarray:
    action, pitch = obj.action, SHAPE_PITCH[obj.shape]
    frequency = pitch * _size_factor(action, t)  # rises while growing, falls while shrinking
    level = TONE_LEVEL * opacity(obj, t)
    if action.name == "spin":
        pulses = SYMMETRY[obj.shape] * abs(action.turns)
        level = level * (0.5 + 0.5 * np.cos(2 * np.pi * pulses * t))
    audio = level * np.sin(2 * np.pi * np.cumsum(frequency) / rate)
    for onset in action.events:
        audio += BEEP_LEVEL * _beep(t, onset, *_event_sweep(action, pitch))
    return audio


def render_audio(scene: Scene, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The clip's mono waveform: float32 in [-1, 1], ``round(duration · rate)`` samples."""
    t = np.arange(round(scene.duration * rate)) / rate
    audio = NOISE_LEVEL * rng.standard_normal(t.size)
    for obj in scene.objects:
        audio += _object_audio(obj, t, rate)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
