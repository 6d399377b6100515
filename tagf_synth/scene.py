"""Composing pictures: the raw video frame (room, people, lighting, camera noise) and the aligned crops.

Each video has its own static room (a wall colour with a few furniture-like blocks), lighting (overall gain,
colour cast, a linear gradient across the picture, a slight flicker) and camera noise level. A crop is
rendered at 112×112 from the same person, expression, room and lighting, as if aligned from the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from tagf_synth.face import draw_face, draw_occluder
from tagf_synth.layout import CROP_SIZE
from tagf_synth.person import HAND_OVER_FACE, NOT_HIDDEN, Person

FACE_HALF_HEIGHT_IN_FRAME = 0.36  # of the frame height: a face the cascade finds at 192×144
CROP_FACE_CENTRE = (CROP_SIZE / 2, CROP_SIZE * 0.48)
CROP_FACE_HALF_HEIGHT = CROP_SIZE * 0.45
_CROP_SPAN = 2.3  # the crop covers this many face half-heights of the raw frame
# Fresh Gaussian noise per frame costs more than drawing the frame; a few fields viewed at random shifts
# look just as random to the eye and to a model.
_NOISE_FIELDS = 4
_NOISE_SHIFT = 32


@dataclass(frozen=True)
class Scene:
    """One video's surroundings: everything in the picture except the people."""

    room: np.ndarray
    """height × width × 3 uint8 RGB: the background without people."""
    light: np.ndarray
    """height × width × 3 float32: per-pixel gain (brightness × colour cast × gradient)."""
    flicker: np.ndarray
    """frames float: global brightness factor per frame."""
    noise_sigma: float
    noise_bank: np.ndarray
    """fields × H' × W' × 3 float32 unit Gaussian noise; frames take shifted windows of it (see ``_photograph``)."""
    room_noise_level: float
    """RMS of the audio background noise."""
    face_centres: tuple[tuple[float, float], ...]
    """Resting face centre (x, y) in pixels, one per person, left to right."""
    face_half_height: float


def random_scene(rng: np.random.Generator, width: int, height: int, frames: int, people: int) -> Scene:
    wall = rng.uniform(60.0, 200.0, 3)
    room = np.empty((height, width, 3), dtype=np.uint8)
    room[:] = wall.astype(np.uint8)
    for _block in range(int(rng.integers(2, 5))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = (int(rng.integers(width // 8, width // 2)), int(rng.integers(height // 8, height // 2)))
        colour = np.clip(wall * rng.uniform(0.5, 1.3, 3), 0, 255)
        cv2.rectangle(room, (x0, y0), (x0 + size[0], y0 + size[1]), tuple(float(c) for c in colour), -1)

    gain = rng.uniform(0.75, 1.2)
    cast = rng.uniform(0.9, 1.1, 3)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    strength = rng.uniform(0.0, 0.25)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = ((xs - width / 2) * np.cos(angle) + (ys - height / 2) * np.sin(angle)) / max(width, height)
    gradient = 1.0 + strength * 2.0 * along
    light = (gain * gradient[:, :, None] * cast[None, None, :]).astype(np.float32)

    t = np.arange(frames)
    flicker = 1.0 + 0.03 * np.sin(2.0 * np.pi * t / rng.uniform(40.0, 120.0)) + rng.normal(0.0, 0.005, frames)
    half_height = FACE_HALF_HEIGHT_IN_FRAME * height
    centres = tuple((width * (2 * k + 1) / (2 * people), height * 0.53) for k in range(people))
    return Scene(
        room=room,
        light=light,
        flicker=flicker.astype(np.float32),
        noise_sigma=float(rng.uniform(2.0, 6.0)),
        noise_bank=rng.standard_normal(
            (_NOISE_FIELDS, max(height, CROP_SIZE) + _NOISE_SHIFT, max(width, CROP_SIZE) + _NOISE_SHIFT, 3),
            dtype=np.float32,
        ),
        room_noise_level=float(rng.uniform(0.002, 0.006)),
        face_centres=centres,
        face_half_height=half_height,
    )


def render_frame(scene: Scene, people: Sequence[Person], frame: int, rng: np.random.Generator) -> np.ndarray:
    """The raw video frame ``frame``: every person with their expression (or hidden), lit and noisy."""
    canvas = scene.room.copy()
    s = scene.face_half_height
    for person, (cx, cy) in zip(people, scene.face_centres, strict=True):
        dx, dy = person.head_motion[frame] * s
        centre = (cx + dx, cy + dy)
        valence, arousal = person.face_expression[frame]
        draw_face(canvas, centre, s, person.identity, valence, arousal)
        hidden = int(person.hidden[frame])
        if hidden != NOT_HIDDEN:
            # The head stays in the picture; what is missing is a frontal face.
            colour = person.identity.skin if hidden == HAND_OVER_FACE else person.identity.hair
            draw_occluder(canvas, centre, s, colour, hidden)
    return _photograph(canvas, scene.light, float(scene.flicker[frame]), scene, rng)


@dataclass(frozen=True)
class CropView:
    """The room and lighting around one person's resting face position, scaled to the crop size."""

    room: np.ndarray
    light: np.ndarray


def crop_view(scene: Scene, person_index: int) -> CropView:
    cx, cy = scene.face_centres[person_index]
    half = _CROP_SPAN * scene.face_half_height / 2
    height, width = scene.room.shape[:2]
    # Crop window in frame pixels, shifted to stay inside the frame (real crops would be padded instead).
    x0 = int(np.clip(round(cx - half), 0, max(0, width - 2 * half)))
    y0 = int(np.clip(round(cy - half), 0, max(0, height - 2 * half)))
    x1, y1 = min(width, x0 + round(2 * half)), min(height, y0 + round(2 * half))
    size = (CROP_SIZE, CROP_SIZE)
    room = cv2.resize(scene.room[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR)
    light = cv2.resize(scene.light[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR)
    return CropView(room=room, light=light)


def render_crop(view: CropView, scene: Scene, person: Person, frame: int, rng: np.random.Generator) -> np.ndarray:
    """The 112×112 aligned face of ``person`` at ``frame`` (call only where ``person.has_crop``)."""
    canvas = view.room.copy()
    dx, dy = person.crop_jitter[frame] * CROP_FACE_HALF_HEIGHT
    valence, arousal = person.face_expression[frame]
    centre = (CROP_FACE_CENTRE[0] + dx, CROP_FACE_CENTRE[1] + dy)
    draw_face(canvas, centre, CROP_FACE_HALF_HEIGHT, person.identity, valence, arousal)
    return _photograph(canvas, view.light, float(scene.flicker[frame]), scene, rng)


def _photograph(
    canvas: np.ndarray, light: np.ndarray, flicker: float, scene: Scene, rng: np.random.Generator
) -> np.ndarray:
    """Soften the drawing like a lens, apply the lighting, add sensor noise, quantise to uint8."""
    height, width = canvas.shape[:2]
    blurred = cv2.GaussianBlur(canvas, (3, 3), 0.7)
    lit = cv2.multiply(blurred, light, scale=flicker, dtype=cv2.CV_32F)
    field = int(rng.integers(_NOISE_FIELDS))
    dy, dx = (int(v) for v in rng.integers(0, _NOISE_SHIFT + 1, 2))
    noise = scene.noise_bank[field, dy : dy + height, dx : dx + width]
    lit = cv2.scaleAdd(noise, scene.noise_sigma, lit) + 0.5  # + 0.5: round rather than truncate below
    return np.clip(lit, 0.0, 255.0, out=lit).astype(np.uint8)
