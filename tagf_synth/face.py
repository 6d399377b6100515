"""A frontal cartoon face drawn with OpenCV whose expression follows valence and arousal.

The face is deliberately "face-like" for OpenCV's Haar cascade (dark eye sockets and brows above lighter
cheeks, a nose shadow, a dark mouth, on a skin-coloured oval with hair around it), so preprocessing can
find it in the raw video when a trial has no ``cropped_aligned`` folder.

Expression mapping (the ground truth a model can learn):

* valence → mouth curvature (corners up = smile, down = frown) and, weaker, inner-brow lowering when negative;
* arousal → eye openness, eyebrow height and mouth opening.

All lengths are fractions of ``half_height`` (the face oval's vertical semi-axis in pixels), so one
function draws both the 112×112 aligned crops and the smaller face in the raw video.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

# cv2 drawing takes integer coordinates; with shift=4 they are in 1/16 pixel, so slow motion stays smooth.
_SHIFT = 4
_SUBPIXEL = 1 << _SHIFT

RGB = tuple[float, float, float]
_SCLERA: RGB = (205.0, 200.0, 195.0)
_PUPIL: RGB = (15.0, 12.0, 12.0)
_LID: RGB = (35.0, 25.0, 25.0)
_MOUTH_INSIDE: RGB = (55.0, 18.0, 22.0)
_LIP_LINE: RGB = (70.0, 25.0, 30.0)

# How strongly the expression moves the features, in units of the face half-height.
MOUTH_CORNER_LIFT = 0.13  # corner rise at valence +1 (negative valence lowers the corners by as much)
MOUTH_MAX_OPENING = 0.16  # inner-lip gap at arousal +1
EYE_MIN_OPENING = 0.022  # half-height of the visible eye at arousal -1: sleepy but not closed
EYE_OPENING_RANGE = 0.05  # added at arousal +1
BROW_RAISE = 0.06  # brow moves this much up (arousal +1) or down (arousal -1)


@dataclass(frozen=True)
class FaceIdentity:
    """What makes one synthetic person look like themself across frames."""

    skin: RGB
    hair: RGB
    iris: RGB
    lips: RGB
    width_ratio: float
    """Face oval half-width over half-height."""
    eye_spacing: float
    """Eye centre distance from the midline, as a fraction of the face half-width."""
    eye_size: float
    mouth_width: float
    """Mouth half-width as a fraction of the face half-width."""
    brow_thickness: float


def random_identity(rng: np.random.Generator) -> FaceIdentity:
    """Draw a person: skin tone from pale to dark, hair colour, face and feature proportions."""
    tone = rng.uniform(0.0, 1.0)
    # Interpolate between a pale and a dark skin colour; both stay clearly lighter than eyes and brows
    # so the Haar cascade's dark-eyes/light-cheeks contrast survives for every identity.
    pale, dark = np.array([236.0, 200.0, 176.0]), np.array([168.0, 116.0, 84.0])
    skin = (1.0 - tone) * pale + tone * dark + rng.normal(0.0, 5.0, 3)
    hair = rng.choice(np.array([[35.0, 28.0, 24.0], [70.0, 45.0, 25.0], [120.0, 85.0, 45.0], [50.0, 50.0, 55.0]]))
    iris = rng.choice(np.array([[60.0, 40.0, 25.0], [45.0, 70.0, 110.0], [60.0, 85.0, 50.0], [30.0, 25.0, 20.0]]))
    lips = skin * np.array([0.78, 0.48, 0.50])
    return FaceIdentity(
        skin=_rgb(skin),
        hair=_rgb(hair + rng.normal(0.0, 6.0, 3)),
        iris=_rgb(iris),
        lips=_rgb(lips),
        width_ratio=float(rng.uniform(0.74, 0.84)),
        eye_spacing=float(rng.uniform(0.38, 0.46)),
        eye_size=float(rng.uniform(0.9, 1.1)),
        mouth_width=float(rng.uniform(0.36, 0.46)),
        brow_thickness=float(rng.uniform(0.05, 0.07)),
    )


def draw_face(
    canvas: np.ndarray,
    centre: tuple[float, float],
    half_height: float,
    identity: FaceIdentity,
    valence: float,
    arousal: float,
) -> None:
    """Draw one face in place on an RGB uint8 ``canvas``; ``centre`` is the oval's centre (x, y) in pixels."""
    cx, cy = centre
    s = half_height
    a = s * identity.width_ratio
    colours = _palette(identity)
    arousal01 = (min(1.0, max(-1.0, float(arousal))) + 1.0) / 2.0
    valence = min(1.0, max(-1.0, float(valence)))

    # Neck and hair behind the head first, so the face oval covers them.
    _rectangle(canvas, (cx - 0.45 * a, cy + 0.55 * s), (cx + 0.45 * a, cy + 1.6 * s), colours.neck)
    _ellipse(canvas, (cx, cy - 0.12 * s), (1.12 * a, 1.02 * s), identity.hair)
    for side in (-1.0, 1.0):
        _ellipse(canvas, (cx + side * 0.98 * a, cy - 0.02 * s), (0.14 * a, 0.22 * s), colours.ear)

    # Face oval with a darker rim: after the camera blur this reads as rounded shading.
    _ellipse(canvas, (cx, cy), (a, s), colours.rim)
    _ellipse(canvas, (cx, cy - 0.04 * s), (0.88 * a, 0.9 * s), identity.skin)
    # Fringe over the top of the forehead.
    _ellipse(canvas, (cx, cy - 0.86 * s), (0.92 * a, 0.3 * s), identity.hair)

    eye_y = cy - 0.14 * s
    eye_open = s * (EYE_MIN_OPENING + EYE_OPENING_RANGE * arousal01) * identity.eye_size
    brow_y = eye_y - s * (0.17 + BROW_RAISE * (2.0 * arousal01 - 1.0))
    frown = 0.05 * s * max(0.0, -valence)  # inner brow ends drop when valence is negative
    eye_w = 0.17 * a * identity.eye_size
    iris_r = 0.075 * s * identity.eye_size
    for side in (-1.0, 1.0):
        ex = cx + side * identity.eye_spacing * a
        # Eye socket shadow: the dark band the frontal-face cascade relies on most.
        _ellipse(canvas, (ex, eye_y - 0.01 * s), (0.27 * a, 0.13 * s), colours.socket)
        _ellipse(canvas, (ex, eye_y), (eye_w, eye_open), _SCLERA)
        _ellipse(canvas, (ex, eye_y), (iris_r, min(iris_r, eye_open)), identity.iris)
        _ellipse(canvas, (ex, eye_y), (0.4 * iris_r, min(0.4 * iris_r, eye_open)), _PUPIL)
        # Upper lid line: keeps a dark eye even when the eye is nearly shut.
        _arc(canvas, (ex, eye_y), (eye_w * 1.05, eye_open * 1.1), 180.0, 360.0, _LID, 0.025 * s)
        brow = [
            (cx + side * 0.1 * a, brow_y + 0.02 * s + frown),
            (cx + side * identity.eye_spacing * a, brow_y - 0.03 * s),
            (cx + side * (identity.eye_spacing + 0.26) * a, brow_y + 0.03 * s),
        ]
        _polyline(canvas, brow, colours.brow, identity.brow_thickness * s)

    # Nose: shadowed sides, lighter tip, dark nostrils.
    for side in (-1.0, 1.0):
        side_line = [(cx + side * 0.1 * a, cy - 0.08 * s), (cx + side * 0.14 * a, cy + 0.2 * s)]
        _polyline(canvas, side_line, colours.nose_side, 0.04 * s)
        _ellipse(canvas, (cx + side * 0.1 * a, cy + 0.25 * s), (0.055 * a, 0.03 * s), colours.nostril)
    _ellipse(canvas, (cx, cy + 0.2 * s), (0.09 * a, 0.06 * s), colours.nose_tip)

    _draw_mouth(canvas, cx, cy + 0.5 * s, s, identity.mouth_width * a, identity.lips, valence, arousal01)


@dataclass(frozen=True)
class _Palette:
    """Shades derived from an identity's skin and hair, computed once per identity."""

    neck: RGB
    ear: RGB
    rim: RGB
    socket: RGB
    nose_side: RGB
    nostril: RGB
    nose_tip: RGB
    brow: RGB


@functools.lru_cache(maxsize=64)
def _palette(identity: FaceIdentity) -> _Palette:
    skin = np.array(identity.skin)
    return _Palette(
        neck=_rgb(skin * 0.78),
        ear=_rgb(skin * 0.86),
        rim=_rgb(skin * 0.86),
        socket=_rgb(skin * 0.72),
        nose_side=_rgb(skin * 0.8),
        nostril=_rgb(skin * 0.42),
        nose_tip=_rgb(skin * 1.06),
        brow=_rgb(np.array(identity.hair) * 0.8),
    )


def _draw_mouth(
    canvas: np.ndarray,
    cx: float,
    mid_y: float,
    s: float,
    half_width: float,
    lips: RGB,
    valence: float,
    arousal01: float,
) -> None:
    """Lips around a parabolic midline: the midline's curvature is valence, the lip gap is arousal.

    Upper and lower lip are symmetric about the midline, so the midline (and the curvature a test
    measures from it) does not depend on how wide the mouth is open.
    """
    x = np.linspace(-1.0, 1.0, 21)
    lift = MOUTH_CORNER_LIFT * s * valence
    # Shift the whole mouth down by a third of the lift so a smile does not look like a raised mouth.
    midline = mid_y - lift * x**2 + lift / 3.0
    gap = s * (0.008 + MOUTH_MAX_OPENING * arousal01**1.5) * (1.0 - x**2)
    lip = 0.05 * s * (1.0 - 0.6 * x**2)
    xs = cx + half_width * x
    outer = np.concatenate(
        [np.stack([xs, midline - gap / 2 - lip], 1), np.stack([xs, midline + gap / 2 + lip], 1)[::-1]]
    )
    _polygon(canvas, outer, lips)
    inner = np.concatenate([np.stack([xs, midline - gap / 2], 1), np.stack([xs, midline + gap / 2], 1)[::-1]])
    _polygon(canvas, inner, _MOUTH_INSIDE)
    _polyline(canvas, np.stack([xs, midline], 1), _LIP_LINE, max(1.0, 0.02 * s))


def draw_occluder(canvas: np.ndarray, centre: tuple[float, float], half_height: float, colour: RGB, kind: int) -> None:
    """Hide a face the way real videos do: a hand over it (kind 0) or the head turned away (kind 1)."""
    cx, cy = centre
    s = half_height
    if kind == 0:
        # A palm-sized blob over eyes, nose and mouth: the cascade cannot fire without the eye band.
        _ellipse(canvas, (cx + 0.05 * s, cy + 0.05 * s), (0.8 * s, 0.75 * s), colour)
        for finger in range(4):
            x = cx - 0.45 * s + finger * 0.3 * s
            _ellipse(canvas, (x, cy - 0.7 * s), (0.12 * s, 0.4 * s), colour)
    else:
        # Back of the head: hair everywhere the face was.
        _ellipse(canvas, (cx, cy - 0.05 * s), (0.85 * s, 1.05 * s), colour)


def _rgb(values: np.ndarray | tuple[float, ...]) -> RGB:
    clipped = np.clip(np.asarray(values, dtype=float), 0.0, 255.0)
    return (float(clipped[0]), float(clipped[1]), float(clipped[2]))


def _fixed(value: float) -> int:
    return int(round(value * _SUBPIXEL))


def _ellipse(canvas: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], colour: RGB) -> None:
    cv2.ellipse(
        canvas,
        (_fixed(centre[0]), _fixed(centre[1])),
        (max(1, _fixed(axes[0])), max(1, _fixed(axes[1]))),
        0.0,
        0.0,
        360.0,
        colour,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )


def _arc(
    canvas: np.ndarray,
    centre: tuple[float, float],
    axes: tuple[float, float],
    start: float,
    end: float,
    colour: RGB,
    thickness: float,
) -> None:
    cv2.ellipse(
        canvas,
        (_fixed(centre[0]), _fixed(centre[1])),
        (max(1, _fixed(axes[0])), max(1, _fixed(axes[1]))),
        0.0,
        start,
        end,
        colour,
        max(1, int(round(thickness))),
        cv2.LINE_AA,
        _SHIFT,
    )


def _rectangle(
    canvas: np.ndarray, top_left: tuple[float, float], bottom_right: tuple[float, float], colour: RGB
) -> None:
    cv2.rectangle(
        canvas,
        (_fixed(top_left[0]), _fixed(top_left[1])),
        (_fixed(bottom_right[0]), _fixed(bottom_right[1])),
        colour,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )


def _polyline(
    canvas: np.ndarray, points: np.ndarray | list[tuple[float, float]], colour: RGB, thickness: float
) -> None:
    fixed = np.round(np.asarray(points) * _SUBPIXEL).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [fixed], False, colour, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)


def _polygon(canvas: np.ndarray, points: np.ndarray, colour: RGB) -> None:
    fixed = np.round(points * _SUBPIXEL).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [fixed], colour, cv2.LINE_AA, _SHIFT)
