"""Tours: the world's clips as long subtitled videos with known subtitle noise.

Watch and Learn's setting (ApartmenTour): long videos whose subtitles are often chatter unrelated
to the picture, or loosely related. The clips of each split, in index order, are chunked into
tours of ``tour_clips`` consecutive clips (the last tour of a split may be shorter):

    tours/tour{k}.mp4         the clips' frames and audio end to end (a silent clip's span is
                              silence; a tour of silent clips has no audio stream)
    tours/tour{k}.srt         cue j spans clip j's time in the tour, less ``CUE_GAP_MS`` at its
                              end, and says the clip's first caption, or noise
    tours/splits.csv          each tour's split (columns video, split)
    annotations/tours.jsonl   the ground truth, one line per cue: tour, cue (1-based), clip_id
                              (the subtitles adapter's id, ``tour{k}_{cue:04d}``), clip (the
                              index of the clip it shows), split, start, end (s), text, noise

Noise is in training tours only (validation and test cues are clean): a ``subtitle_noise``
fraction of the training cues, drawn from a dedicated random stream, say something else —
half of them (rounded) a vlogger's ``CHATTER`` line (``noise: "chatter"``), the rest the first
caption of another clip of the same tour (``"other_clip"``: same video, wrong moment; a cue whose
tour has no other clip with a different caption gets chatter instead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import srt

from vlpipe.atomic import write_text
from vlpipe.datasets.base import normalise_split
from vlpipe.synthetic.writer import write_clip

TOURS_DIR = "tours"
SPLITS_FILE = f"{TOURS_DIR}/splits.csv"
GROUND_TRUTH = "annotations/tours.jsonl"
CUE_GAP_MS = 100  # a cue ends this long before the next clip starts, so cues never touch
NOISE_STREAM = 2  # SeedSequence spawn key of the subtitle noise (clips use 0, silence 1)
# Plausible vlogger lines that name none of the world's colours, shapes, sizes or actions.
CHATTER = (
    "thanks so much for watching",
    "let me know in the comments what you think",
    "hi everyone welcome back to my channel",
    "do not forget to like and subscribe",
    "okay so this is where the magic happens",
    "honestly i love how this place feels",
    "we will come back to that in a minute",
    "so that is pretty much it for today",
    "i was not sure about this at first",
    "the light in here is amazing in the morning",
    "anyway let us keep going",
    "you can find the link in the description",
    "i will walk you through the rest later",
    "my landlord said it was fine",
    "sorry the camera is a bit shaky",
)


@dataclass(frozen=True)
class Tour:
    """One tour video: its name, its split (the adapters' name) and the clips it shows."""

    name: str
    split: str
    clips: tuple[int, ...]


def plan_tours(split_sizes: dict[str, int], tour_clips: int) -> list[Tour]:
    """Tours of ``tour_clips`` consecutive clips per split (contiguous blocks, in order)."""
    tours: list[Tour] = []
    first = 0
    for split, count in split_sizes.items():
        end = first + count
        for start in range(first, end, tour_clips):
            tours.append(Tour(f"tour{len(tours)}", normalise_split(split, "WorldConfig"),
                              tuple(range(start, min(start + tour_clips, end)))))
        first = end
    return tours


def tour_annotation_files(tours: list[Tour]) -> list[str]:
    """The files the subtitles adapter reads (root-relative, in its order): subtitles + splits."""
    return [*sorted(f"{TOURS_DIR}/{tour.name}.srt" for tour in tours), SPLITS_FILE]


def write_tour_video(path: Path, clips: list[tuple[np.ndarray, np.ndarray | None]], fps: int,
                     audio_rate: int) -> None:
    """Write the (frames, waveform or None) of a tour's clips end to end as one .mp4."""
    frames = np.concatenate([clip_frames for clip_frames, _ in clips])
    waveform = None
    if any(wave is not None for _, wave in clips):
        silence = np.zeros(len(clips[0][0]) * audio_rate // fps, np.float32)
        waveform = np.concatenate([silence if wave is None else wave for _, wave in clips])
    write_clip(path, frames, fps, waveform, audio_rate)


def _noisy_cues(tours: list[Tour], captions: list[list[str]], noise: float,
                seed: int) -> dict[tuple[int, int], tuple[str, str]]:
    """(tour position, cue position) → (kind, text) of the noisy training cues."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(NOISE_STREAM,)))
    cues = [(t, j) for t, tour in enumerate(tours) if tour.split == "train"
            for j in range(len(tour.clips))]
    count = round(len(cues) * noise)
    noisy = {}
    for rank, position in enumerate(rng.permutation(len(cues))[:count]):
        t, j = cues[int(position)]
        shown = tours[t].clips[j]
        others = [clip for clip in tours[t].clips
                  if clip != shown and captions[clip][0] not in captions[shown]]
        if rank < round(count / 2) or not others:
            noisy[t, j] = ("chatter", CHATTER[int(rng.integers(len(CHATTER)))])
        else:
            noisy[t, j] = ("other_clip", captions[others[int(rng.integers(len(others)))]][0])
    return noisy


def tour_cues(tours: list[Tour], captions: list[list[str]], duration_s: float, noise: float,
              seed: int) -> list[dict]:
    """The ground truth of every cue (see the module doc); ``captions`` are per world clip."""
    noisy = _noisy_cues(tours, captions, noise, seed)
    rows = []
    for t, tour in enumerate(tours):
        for j, clip in enumerate(tour.clips):
            kind, text = noisy.get((t, j), (None, captions[clip][0]))
            start_ms = round(j * duration_s * 1000)
            end_ms = round((j + 1) * duration_s * 1000) - CUE_GAP_MS
            rows.append({"tour": tour.name, "cue": j + 1, "clip_id": f"{tour.name}_{j + 1:04d}",
                         "clip": clip, "split": tour.split, "start": start_ms / 1000,
                         "end": end_ms / 1000, "text": text, "noise": kind})
    return rows


def _subtitles(cues: list[dict]) -> str:
    return srt.compose([srt.Subtitle(cue["cue"], timedelta(seconds=cue["start"]),
                                     timedelta(seconds=cue["end"]), cue["text"])
                        for cue in cues])


def write_tour_annotations(root: Path, tours: list[Tour], cues: list[dict]) -> None:
    """Write each tour's .srt, ``SPLITS_FILE`` and the ground truth ``GROUND_TRUTH``."""
    for tour in tours:
        write_text(root / TOURS_DIR / f"{tour.name}.srt",
                   _subtitles([cue for cue in cues if cue["tour"] == tour.name]))
    write_text(root / SPLITS_FILE,
               "video,split\n" + "".join(f"{tour.name},{tour.split}\n" for tour in tours))
    write_text(root / GROUND_TRUTH,
               "".join(json.dumps(cue, sort_keys=True) + "\n" for cue in cues))
