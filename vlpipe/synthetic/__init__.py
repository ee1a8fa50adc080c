"""A seeded synthetic video-language world: the embedded demo data set and test bed.

Short clips of coloured shapes that grow, shrink, blink, appear, disappear, spin, change colour,
move or bounce, encoded as real H.264/AAC .mp4 files, with sentences generated from the rendered
scene and MSR-VTT-style annotations.

- ``scene.py``: scene dataclasses, their sampling and the sentence grammar;
- ``render.py``: frames and audio from a scene (``object_state`` gives any object at any time);
- ``writer.py``: deterministic, atomic .mp4 writing with PyAV;
- ``world.py``: ``WorldConfig`` and ``generate_world``;
- ``tours.py``: the clips as long subtitled "tour" videos with known subtitle noise (Watch and
  Learn's setting; ``WorldConfig.tour_clips``), read by the subtitles adapter;
- ``gaze.py``: simulated viewers whose fixations follow the salient object
  (``WorldConfig.gaze_subjects``), read by the gaze adapter (GEAN + RGP's setting).
- stories (``WorldConfig.story_length``): consecutive clips that share a background and carry
  a salient object from clip to clip, their later sentences "then …" (TAPM's setting).
- ``characters.py``: a cast of recurring characters per story (``WorldConfig.cast``), written as
  LSMDC 2019 Fill-in the Characters files with M-VAD Names-style tracks and mentions (CiSIN's
  setting).

Planned extensions and where they go (not implemented):

- Event-level subtitles: cues timed by the event times in each ``Action`` rather than one cue
  per clip (``tours.py``).
"""

from vlpipe.synthetic.world import WorldConfig, generate_world

__all__ = ["WorldConfig", "generate_world"]
