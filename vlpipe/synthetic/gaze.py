"""Simulated viewers: eye-tracker samples of several subjects watching a synthetic clip.

Each subject's gaze is a sequence of fixations, each with a target and a dwell time drawn when
the previous one ends:

- the salient object (``scene.objects[0]``), with weight ``SALIENT_WEIGHT`` and a dwell of
  ``SALIENT_DWELL`` s; the gaze follows it while it moves or bounces (smooth pursuit), at an
  offset fixed for the fixation and proportional to the object's current radius
  (``OFFSET_SCALE``), so it stays on the object as it grows or shrinks;
- the distractor (``scene.objects[1]``, where there is one and it is visible when the fixation
  starts), with weight ``DISTRACTOR_WEIGHT`` and a short dwell (``SHORT_DWELL``);
- a uniformly drawn place of the frame, with weight ``RANDOM_WEIGHT`` and a short dwell.

Weights of unavailable targets are dropped and the rest renormalised. Every target is pulled
toward the frame centre (central bias): the point looked at is
``target + CENTRE_PULL · (centre − target)``. While the object of a fixation is invisible (a
blink's off phase, before it appears, after it disappears) the gaze holds where it was and
drifts toward the centre with time constant ``DRIFT_S``; the moment the object is visible again
(a blink's on phase, an appearance) the gaze is back on it. Before the clip the viewer looks at
the centre (a fixation cross, as in eye-tracking protocols).

Samples: ``SAMPLE_RATE`` Hz (30, an eye tracker's samples already reduced to a video rate;
independent of the rendered fps), at ``k / SAMPLE_RATE`` s for every k with that time before
the clip's end. A sample is the noise-free gaze plus a per-subject calibration offset
(``CALIBRATION``, drawn once per subject) plus per-sample Gaussian jitter (``JITTER``), clipped
to the frame; positions are fractions of the frame side, (0, 0) the top-left corner.

Everything draws from the generator it is given, in a fixed order: the same generator state
gives the same samples. The world (``world.py``) gives every clip its own stream
(``gaze_rng``), and writes the samples in the gaze adapter's ``table`` layout
(``vlpipe.datasets.gaze``) with ``fixations_csv``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from vlpipe.synthetic.render import object_state
from vlpipe.synthetic.scene import Scene, SceneObject

GAZE_FILE = "annotations/gaze/fixations.csv"
GAZE_STREAM = 3  # SeedSequence spawn key (3, clip index); clips use 0, silence 1, subtitles 2
SAMPLE_RATE = 30.0  # Hz
SALIENT_WEIGHT, DISTRACTOR_WEIGHT, RANDOM_WEIGHT = 0.8, 0.15, 0.05
SALIENT_DWELL = (0.3, 0.8)  # s, uniform
SHORT_DWELL = (0.1, 0.25)  # s, uniform: saccades to the distractor or a random place
OFFSET_SCALE = 0.3  # fixation offset from an object's centre, at most this × its radius per axis
CENTRE_PULL = 0.15
DRIFT_S = 1.0  # time constant of the drift toward the centre while the target is invisible
JITTER = 0.01  # per-sample gaze noise, fraction of the frame side (standard deviation)
CALIBRATION = 0.01  # per-subject constant offset (standard deviation)
RANDOM_MARGIN = 0.1  # random places are drawn in [margin, 1 - margin]²
CENTRE = np.array([0.5, 0.5])

Fixation = tuple[int, float, float, float]  # subject, time (s), x, y (fractions of the frame)


def gaze_rng(seed: int, index: int) -> np.random.Generator:
    """The gaze stream of clip ``index`` of the world with ``seed``: its own spawn key, so the
    clips' other streams (and other clips' gaze) do not depend on it."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(GAZE_STREAM, index)))


def sample_times(duration: float, rate: float = SAMPLE_RATE) -> np.ndarray:
    """``k / rate`` for every k with that time before ``duration``."""
    return np.arange(math.ceil(duration * rate - 1e-9)) / rate


class _Track:
    """An object's centre, radius and visibility at every sample time."""

    def __init__(self, obj: SceneObject, times: np.ndarray) -> None:
        states = [object_state(obj, float(t)) for t in times]
        self.centre = np.array([s.centre for s in states]).reshape(len(times), 2)
        self.radius = np.array([s.radius for s in states])
        self.visible = np.array([s.opacity > 0 for s in states], dtype=bool)


def _subject(rng: np.random.Generator, times: np.ndarray, rate: float, salient: _Track,
             distractor: _Track | None) -> np.ndarray:
    """One viewer's samples, (len(times), 2)."""
    calibration = rng.normal(0.0, CALIBRATION, 2)
    jitter = rng.normal(0.0, JITTER, (len(times), 2))
    drift = 1.0 - math.exp(-1.0 / (rate * DRIFT_S))  # per sample
    position = CENTRE.copy()
    out = np.empty((len(times), 2))
    ends_at, kind, offset, place = -1.0, "", np.zeros(2), CENTRE
    for k, t in enumerate(times):
        if t >= ends_at:  # a new fixation
            options = {"salient": SALIENT_WEIGHT, "random": RANDOM_WEIGHT}
            if distractor is not None and distractor.visible[k]:
                options["distractor"] = DISTRACTOR_WEIGHT
            names = sorted(options)
            weights = np.array([options[n] for n in names])
            kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            dwell = SALIENT_DWELL if kind == "salient" else SHORT_DWELL
            ends_at = t + float(rng.uniform(*dwell))
            offset = rng.uniform(-OFFSET_SCALE, OFFSET_SCALE, 2)
            place = rng.uniform(RANDOM_MARGIN, 1.0 - RANDOM_MARGIN, 2)
        track = {"salient": salient, "distractor": distractor}.get(kind)
        if track is None:
            target = place
        elif track.visible[k]:
            target = track.centre[k] + offset * track.radius[k]
        else:
            target = None
        if target is None:  # hold, drifting toward the centre
            position = position + drift * (CENTRE - position)
        else:
            position = target + CENTRE_PULL * (CENTRE - target)
        out[k] = position
    return np.clip(out + calibration + jitter, 0.0, 1.0)


def sample_fixations(scene: Scene, n_subjects: int, rng: np.random.Generator,
                     rate: float = SAMPLE_RATE) -> list[Fixation]:
    """Every viewer's gaze samples over the clip, ``(subject, time, x, y)`` ordered by subject
    then time: subjects ``0 … n_subjects - 1``, time in seconds from the clip start, x and y
    fractions of the frame width and height (see the module docstring)."""
    if n_subjects < 0 or rate <= 0:
        raise ValueError(f"need n_subjects >= 0 and rate > 0, got {n_subjects}, {rate}")
    times = sample_times(scene.duration, rate)
    salient = _Track(scene.objects[0], times)
    distractor = _Track(scene.objects[1], times) if len(scene.objects) > 1 else None
    samples = []
    for subject in range(n_subjects):
        points = _subject(rng, times, rate, salient, distractor)
        samples += [(subject, float(t), float(x), float(y))
                    for t, (x, y) in zip(times, points, strict=True)]
    return samples


GAZE_HEADER = "clip_id,subject,time,x,y\n"


def fixations_csv(clips: Iterable[tuple[str, Sequence[Fixation]]], width: int,
                  height: int) -> str:
    """The gaze adapter's ``table`` layout (header ``clip_id,subject,time,x,y``, time in
    seconds, x and y in pixels of a ``width``×``height`` frame) for ``(clip_id, samples)``."""
    rows = [f"{clip_id},{subject},{t:.4f},{x * width:.2f},{y * height:.2f}\n"
            for clip_id, samples in clips for subject, t, x, y in samples]
    return GAZE_HEADER + "".join(rows)
