"""An independent synthetic Aff-Wild2 VA release: test data on which training must learn what the data holds.

Written from scratch, sharing no code and no design with ``tagf_synth`` (only numpy, PyAV, OpenCV and the
stdlib), so that what a model learns from it is evidence about the training code, not about a generator
developed alongside that code.

Generative model (the ground truth):

* **Labels.** Per trial, valence and arousal are drawn independently: each is a leaky random walk
  (time constant 2–4 s) smoothed by a Gaussian filter of σ = 0.5–0.9 s, min-max rescaled to a span of
  1.0–1.5 around a per-trial centre, so every curve stays in [−0.9, 0.9] and covers a good range.
  Values are written with 3 decimals; ``Release.labels`` holds exactly what the files hold.
* **Faces carry valence only.** Each 112×112 crop is a coloured ellipse ("blob") with two dot eyes on a
  textured background. Valence moves the blob's colour along a line from blue (−1) to orange (+1) and bends
  a dark mouth line inside it (corners up, a smile, for positive valence; down for negative). Per-trial
  identity: blob size, position and brightness, mouth width, background tone, tint and texture, and the
  camera's colour cast; per frame: ±1 px position jitter, brightness flicker and Gaussian pixel noise.
  Arousal is never an input of the drawing.
* **Voice carries arousal only.** A sawtooth buzz whose pitch (0.6 octave per unit, about 125–260 Hz),
  loudness (+15 dB per unit) and brightness (its low-pass opens from 0.9 to 2.6 kHz) rise with arousal,
  with a 3–5 Hz tremolo and no pauses. Per-trial identity: base pitch, level, timbre (the centre and
  strength of one resonance), tremolo rate and the level of a pink background noise. Valence is never an
  input of the synthesis.

Each trial draws its labels, its face and its voice from three independent random generators, so the test
suite can change one label column and check that only the modality carrying it changes.

Containers differ from ``tagf_synth`` on purpose: even trials are ``.mkv`` (MPEG-4 Part 2 video + FLAC
mono 22.05 kHz), odd trials ``.mov`` (Motion-JPEG video + PCM s16le stereo 44.1 kHz); each trial's frame
rate is drawn from ``fps_choices`` (default 24 or 20 fps). Videos are 160×120 and hold exactly ``frames``
video packets (no B-frames), with audio covering the whole duration.

Layout written under ``out`` (the official one ``tagf preprocess`` accepts):

    Annotations/VA_Estimation_Challenge/Train_Set/<trial>.txt        valence,arousal + one row per frame
    Annotations/VA_Estimation_Challenge/Validation_Set/<trial>.txt
    cropped_aligned/<trial>/00001.jpg …                              one 112×112 JPEG per frame
    videos/<trial>.mkv | <trial>.mov

Deterministic: with the same libraries, the same arguments write the same bytes (single-threaded encoders,
bit-exact muxing). The default 7 + 2 trials of 250 frames take about 4 s to write on 2 cores.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Image = npt.NDArray[np.uint8]

CROP_SIZE = 112
VIDEO_WIDTH, VIDEO_HEIGHT = 160, 120
JPEG_QUALITY = 92
ANNOTATION_ROOT = Path("Annotations") / "VA_Estimation_Challenge"
PARTITION_FOLDERS = {"train": "Train_Set", "validate": "Validation_Set"}

# valence −1 → COOL, +1 → WARM (RGB), linearly in between
COOL_RGB = np.array([55.0, 105.0, 225.0])
WARM_RGB = np.array([240.0, 145.0, 35.0])
INK_RGB = (35, 20, 25)  # eyes and mouth

PITCH_OCTAVES_PER_UNIT = 0.6
LOUDNESS_DB_PER_UNIT = 15.0
DARK_CUTOFF_HZ, BRIGHT_CUTOFF_HZ = 900.0, 2600.0  # the buzz's low-pass at arousal −1 and +1
TREMOLO_DEPTH = 0.3

_SHIFT = 4  # cv2 drawing: coordinates carry 4 fractional bits (sub-pixel positions)
_AUDIO_CHUNK = 2048  # samples per encoded audio frame


@dataclass(frozen=True)
class Release:
    """What ``write_release`` wrote: the labels are exactly the values in the annotation files."""

    out: Path
    train: tuple[str, ...]
    validate: tuple[str, ...]
    labels: dict[str, FloatArray]
    """trial → float T×2 (valence, arousal)."""
    fps: dict[str, float]

    @property
    def trials(self) -> tuple[str, ...]:
        return self.train + self.validate


@dataclass(frozen=True, eq=False)
class FaceStyle:
    """A trial's visual identity (nothing here depends on the labels)."""

    background: Image
    """112×112×3 RGB textured background."""
    centre: tuple[float, float]
    axes: tuple[float, float]
    gain: float
    """brightness of the blob's colour."""
    mouth_width: float
    cast: tuple[float, float, float]
    """the camera's colour cast: a gain per RGB channel on the whole image."""
    flicker: float
    """per-frame brightness flicker (standard deviation of a gain around 1)."""
    noise_sigma: float
    """per-frame Gaussian pixel noise, in grey levels."""


@dataclass(frozen=True)
class VoiceStyle:
    """A trial's speaker (nothing here depends on the labels)."""

    base_pitch_hz: float
    """pitch at arousal 0."""
    level_db: float
    """loudness at arousal 0, dB full scale (RMS)."""
    resonance_hz: float
    """centre of the speaker's one resonance (a formant-like bump, 150 Hz wide)."""
    resonance_gain: float
    noise_db: float
    tremolo_hz: float


@dataclass(frozen=True)
class _Container:
    suffix: str
    video_codec: str
    pix_fmt: str
    audio_codec: str
    sample_rate: int
    layout: str


_CONTAINERS = (
    _Container(".mkv", "mpeg4", "yuv420p", "flac", 22_050, "mono"),
    _Container(".mov", "mjpeg", "yuvj420p", "pcm_s16le", 44_100, "stereo"),
)


# ---------------------------------------------------------------------------------------------------------
# labels


def gaussian_smooth_valid(signal: FloatArray, sigma: float) -> FloatArray:
    """Convolve with a normalised Gaussian of ``sigma`` samples, keeping only fully covered samples
    (the output is ``2·radius`` shorter, radius = ceil(4σ))."""
    radius = int(np.ceil(4.0 * sigma))
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    return np.convolve(signal, kernel / kernel.sum(), mode="valid")


def label_curve(rng: np.random.Generator, frames: int, fps: float) -> FloatArray:
    """One smooth label curve of ``frames`` values in [−0.9, 0.9] with 3 decimals.

    A leaky random walk (each step keeps ``exp(−1/(τ·fps))`` of the last value, τ = 2–4 s, so it wanders
    back and forth instead of drifting one way), Gaussian-smoothed over σ = 0.5–0.9 s, then min-max rescaled
    to a span of 1.0–1.5 around a per-trial centre.
    """
    keep = np.exp(-1.0 / (rng.uniform(2.0, 4.0) * fps))
    sigma = rng.uniform(0.5, 0.9) * fps
    radius = int(np.ceil(4.0 * sigma))
    warm_up = int(3 * fps)  # start the walk earlier, so its first frames are not special
    steps = rng.standard_normal(warm_up + frames + 2 * radius)
    walk = np.empty_like(steps)
    level = 0.0
    for k, step in enumerate(steps):
        level = keep * level + step
        walk[k] = level
    smooth = gaussian_smooth_valid(walk[warm_up:], sigma)
    unit = (smooth - smooth.min()) / (smooth.max() - smooth.min())  # [0, 1], both ends reached
    span = rng.uniform(1.0, 1.5)
    centre = rng.uniform(-(0.9 - span / 2), 0.9 - span / 2)
    return np.round(centre + span * (unit - 0.5), 3)


# ---------------------------------------------------------------------------------------------------------
# faces: valence only


def face_style(rng: np.random.Generator) -> FaceStyle:
    """Draw a trial's visual identity: background tone, tint and texture, blob geometry and gain, mouth
    width, camera colour cast, flicker and noise."""
    tone = rng.uniform(85.0, 165.0)
    tint = rng.uniform(-12.0, 12.0, size=3)
    blotches = cv2.resize(rng.uniform(-1.0, 1.0, size=(6, 6)), (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)
    grain = rng.uniform(-1.0, 1.0, size=(CROP_SIZE, CROP_SIZE))
    texture = 22.0 * blotches + 8.0 * grain
    background = np.clip(tone + tint[None, None, :] + texture[:, :, None], 0, 255).astype(np.uint8)
    return FaceStyle(
        background=background,
        centre=(56.0 + rng.uniform(-6.0, 6.0), 58.0 + rng.uniform(-5.0, 5.0)),
        axes=(rng.uniform(30.0, 40.0), rng.uniform(38.0, 46.0)),
        gain=rng.uniform(0.85, 1.1),
        mouth_width=rng.uniform(0.45, 0.65),
        cast=(rng.uniform(0.88, 1.12), rng.uniform(0.9, 1.1), rng.uniform(0.88, 1.12)),
        flicker=rng.uniform(0.01, 0.04),
        noise_sigma=rng.uniform(4.0, 9.0),
    )


def blob_colour(valence: float, gain: float) -> tuple[float, float, float]:
    """The blob's RGB colour: blue for valence −1, orange for +1, scaled by the trial's gain."""
    mix = (valence + 1.0) / 2.0
    rgb = np.clip(gain * ((1.0 - mix) * COOL_RGB + mix * WARM_RGB), 0.0, 255.0)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def _fixed(value: float) -> int:
    return int(round(value * (1 << _SHIFT)))


def draw_face(style: FaceStyle, valence: float, rng: np.random.Generator) -> Image:
    """One 112×112×3 RGB crop for a frame of the given valence (``rng`` supplies jitter, flicker and noise).

    The scene (background, blob, eyes, mouth) is drawn, then seen through the trial's camera: colour cast
    times a per-frame flicker gain, plus Gaussian pixel noise.
    """
    image = style.background.copy()
    cx, cy = np.asarray(style.centre) + rng.uniform(-1.0, 1.0, size=2)
    ax, ay = style.axes
    centre = (_fixed(cx), _fixed(cy))
    cv2.ellipse(image, centre, (_fixed(ax), _fixed(ay)), 0.0, 0.0, 360.0, blob_colour(valence, style.gain),
                thickness=-1, lineType=cv2.LINE_AA, shift=_SHIFT)  # fmt: skip
    for side in (-1.0, 1.0):  # two eyes, fixed: they carry nothing
        eye = (_fixed(cx + side * 0.38 * ax), _fixed(cy - 0.3 * ay))
        cv2.circle(image, eye, _fixed(3.5), INK_RGB, thickness=-1, lineType=cv2.LINE_AA, shift=_SHIFT)
    # mouth: a parabola; the corners rise above the middle by 9 px·valence (smile) or sink below it (frown)
    half = style.mouth_width * ax
    xs = np.linspace(-1.0, 1.0, 17)
    mouth_y = cy + 0.45 * ay + 4.5 * valence * (1.0 - 2.0 * xs**2)
    points = np.stack([cx + half * xs, mouth_y], axis=1)
    cv2.polylines(image, [np.round(points * (1 << _SHIFT)).astype(np.int32)], isClosed=False, color=INK_RGB,
                  thickness=3, lineType=cv2.LINE_AA, shift=_SHIFT)  # fmt: skip
    gain = np.asarray(style.cast, dtype=np.float32) * np.float32(1.0 + style.flicker * rng.standard_normal())
    noise = rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(style.noise_sigma)
    return np.clip(np.rint(image * gain + noise), 0, 255).astype(np.uint8)


def video_frame(face: Image, border: Image) -> Image:
    """The raw 160×120 video frame around a crop: the face scaled to 120 px, ``border`` (RGB) at the sides."""
    frame = np.empty((VIDEO_HEIGHT, VIDEO_WIDTH, 3), dtype=np.uint8)
    frame[:] = border
    left = (VIDEO_WIDTH - VIDEO_HEIGHT) // 2
    frame[:, left : left + VIDEO_HEIGHT] = cv2.resize(face, (VIDEO_HEIGHT, VIDEO_HEIGHT), interpolation=cv2.INTER_AREA)
    return frame


# ---------------------------------------------------------------------------------------------------------
# voice: arousal only


def voice_style(rng: np.random.Generator) -> VoiceStyle:
    """Draw a trial's speaker: base pitch, level, timbre, background noise level and tremolo rate."""
    return VoiceStyle(
        base_pitch_hz=rng.uniform(170.0, 190.0),
        level_db=rng.uniform(-28.0, -26.0),
        resonance_hz=rng.uniform(700.0, 1100.0),
        resonance_gain=rng.uniform(0.5, 0.9),
        noise_db=rng.uniform(-54.0, -48.0),
        tremolo_hz=rng.uniform(3.0, 5.0),
    )


def _unit_rms(signal: FloatArray) -> FloatArray:
    return signal / np.sqrt(np.mean(signal**2))


def synthesize_voice(
    style: VoiceStyle, arousal: FloatArray, fps: float, sample_rate: int, rng: np.random.Generator
) -> FloatArray:
    """The mono waveform (float64, in [−1, 1]) of a trial lasting ``len(arousal) / fps`` seconds.

    Arousal ``a`` (one value per video frame, linearly interpolated between frame times) sets the buzz's
    pitch, ``base · 2^(0.6·a)``, its loudness, ``level + 15·a`` dB, and its brightness: the buzz is a mix of
    a dark rendering (low-pass at 900 Hz) and a bright one (2.6 kHz), weighted (1 ∓ a)/2. The speaker's
    resonance is added to both, so it colours the voice the same way at every arousal.
    """
    samples = int(np.ceil(len(arousal) / fps * sample_rate))
    t = np.arange(samples) / sample_rate
    a = np.interp(t, np.arange(len(arousal)) / fps, arousal)
    pitch = style.base_pitch_hz * 2.0 ** (PITCH_OCTAVES_PER_UNIT * a)
    pitch *= 1.0 + 0.004 * np.sin(2 * np.pi * 5.5 * t)  # a little vibrato
    phase = np.cumsum(pitch / sample_rate) + rng.uniform()
    buzz = 2.0 * (phase % 1.0) - 1.0  # sawtooth
    freqs = np.fft.rfftfreq(samples, d=1.0 / sample_rate)
    resonance = style.resonance_gain * np.exp(-0.5 * ((freqs - style.resonance_hz) / 150.0) ** 2)
    spectrum = np.fft.rfft(buzz)

    def rendering(cutoff_hz: float) -> FloatArray:
        """The buzz through a low-pass at ``cutoff_hz`` plus the speaker's resonance, scaled to unit RMS."""
        timbre = 1.0 / (1.0 + (freqs / cutoff_hz) ** 2) + resonance
        timbre[freqs < 60.0] = 0.0
        return _unit_rms(np.fft.irfft(spectrum * timbre, n=samples))

    bright = (1.0 + a) / 2.0
    voice = (1.0 - bright) * rendering(DARK_CUTOFF_HZ) + bright * rendering(BRIGHT_CUTOFF_HZ)
    tremolo = 1.0 + TREMOLO_DEPTH * np.sin(2 * np.pi * style.tremolo_hz * t + rng.uniform(0, 2 * np.pi))
    voice *= tremolo * 10.0 ** ((style.level_db + LOUDNESS_DB_PER_UNIT * a) / 20.0)
    pink = 1.0 / np.sqrt(np.maximum(freqs, 20.0))
    noise = _unit_rms(np.fft.irfft(np.fft.rfft(rng.standard_normal(samples)) * pink, n=samples))
    noise *= 10.0 ** (style.noise_db / 20.0)
    return np.clip(voice + noise, -0.99, 0.99)


# ---------------------------------------------------------------------------------------------------------
# writing


def _write_annotation(path: Path, labels: FloatArray) -> None:
    lines = ["valence,arousal", *(f"{v:.3f},{a:.3f}" for v, a in labels)]
    path.write_text("\n".join(lines) + "\n")


def _write_video(path: Path, kind: _Container, frames: Iterable[Image], fps: float, audio: FloatArray) -> None:
    """Encode and mux the frames (160×120 RGB, drawn as they are consumed) and the audio (mono float64 in
    [−1, 1]; in a stereo container the right channel is the left at 0.8 gain), audio kept abreast of video."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        container.flags |= cast(int, av.container.Flags.bitexact.value)  # no random segment ids, no version strings
        video = cast(av.video.stream.VideoStream, container.add_stream(kind.video_codec, rate=rate))
        video.width, video.height, video.pix_fmt = VIDEO_WIDTH, VIDEO_HEIGHT, kind.pix_fmt
        video.codec_context.flags |= av.codec.context.Flags.bitexact
        video.codec_context.thread_count = 1
        video.codec_context.max_b_frames = 0  # one packet per frame, in order
        video.bit_rate = 600_000
        sound = cast(
            av.audio.stream.AudioStream,
            container.add_stream(kind.audio_codec, rate=kind.sample_rate, layout=kind.layout),
        )
        sound.codec_context.flags |= av.codec.context.Flags.bitexact
        sound.codec_context.thread_count = 1
        pcm = np.round(audio * 32767.0).astype(np.int16)
        if kind.layout == "stereo":
            pcm = np.stack([pcm, np.round(pcm * 0.8).astype(np.int16)], axis=1).reshape(-1)
        channels = 2 if kind.layout == "stereo" else 1
        sent = 0  # audio samples (per channel) encoded so far
        total = audio.size
        for index, image in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
            until = min(total, int(np.ceil((index + 1) / fps * kind.sample_rate)))
            while sent < until:  # keep the audio abreast of the video, in fixed-size frames
                stop = min(sent + _AUDIO_CHUNK, total)
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(pcm[sent * channels : stop * channels]).reshape(1, -1),
                    format="s16",
                    layout=kind.layout,
                )
                chunk.sample_rate, chunk.pts = kind.sample_rate, sent
                container.mux(sound.encode(chunk))
                sent = stop
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


# each trial draws from independent generators, one per purpose, seeded by (seed, trial index, purpose)
_LABELS, _FACE, _VOICE, _RATES = 0, 1, 2, 3


def trial_labels(seed: int, index: int, frames: int, fps: float) -> FloatArray:
    """The labels of trial ``index``: float T×2 (valence, arousal), two independent ``label_curve`` draws."""
    rng = np.random.default_rng([seed, index, _LABELS])
    valence = label_curve(rng, frames, fps)
    arousal = label_curve(rng, frames, fps)
    return np.stack([valence, arousal], axis=1)


def _write_trial(out: Path, trial: str, partition: str, index: int, frames: int, fps: float, seed: int) -> FloatArray:
    labels = trial_labels(seed, index, frames, fps)
    _write_annotation(out / ANNOTATION_ROOT / PARTITION_FOLDERS[partition] / f"{trial}.txt", labels)

    kind = _CONTAINERS[index % len(_CONTAINERS)]
    voice_rng = np.random.default_rng([seed, index, _VOICE])
    audio = synthesize_voice(voice_style(voice_rng), labels[:, 1], fps, kind.sample_rate, voice_rng)
    faces = _draw_faces(out / "cropped_aligned" / trial, labels[:, 0], np.random.default_rng([seed, index, _FACE]))
    _write_video(out / "videos" / f"{trial}{kind.suffix}", kind, faces, fps, audio)
    return labels


def _draw_faces(crops: Path, valence: FloatArray, rng: np.random.Generator) -> Iterator[Image]:
    """Draw one face per frame, write it as ``crops/00001.jpg`` …, and yield the video frame around it."""
    style = face_style(rng)
    border = style.background.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    crops.mkdir(parents=True)
    for frame, value in enumerate(valence):
        face = draw_face(style, float(value), rng)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        (crops / f"{frame + 1:05d}.jpg").write_bytes(jpeg.tobytes())
        yield video_frame(face, border)


def write_release(
    out: Path,
    *,
    train_trials: int = 7,
    validate_trials: int = 2,
    frames: int = 400,
    seed: int = 0,
    fps_choices: tuple[float, ...] = (24, 20),
) -> Release:
    """Write a release of ``train_trials + validate_trials`` labelled trials of ``frames`` frames under ``out``.

    Trials are ``ind_000``, ``ind_001``, … (train first, then validate). Frame rates are a seeded shuffle
    of ``fps_choices`` repeated over the trials (so each rate is used about equally). Each trial draws its
    labels, its face (identity and per-frame noise) and its voice from three independent generators seeded
    by ``(seed, index)``, so changing one label column changes only the modality that carries it.
    ``out`` must not exist or be empty.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    if frames < 2 or train_trials < 0 or validate_trials < 0 or not fps_choices:
        raise ValueError("need frames ≥ 2, non-negative trial counts and at least one frame rate")
    for folder in PARTITION_FOLDERS.values():
        (out / ANNOTATION_ROOT / folder).mkdir(parents=True, exist_ok=True)
    (out / "videos").mkdir(parents=True, exist_ok=True)

    names = [f"ind_{index:03d}" for index in range(train_trials + validate_trials)]
    labels: dict[str, FloatArray] = {}
    fps: dict[str, float] = {}
    # a seeded shuffle of the choices repeated over the trials: every rate appears when there are enough trials
    order = np.random.default_rng([seed, len(names), _RATES]).permutation(len(names))
    for index, trial in enumerate(names):
        fps[trial] = float(fps_choices[order[index] % len(fps_choices)])
        partition = "train" if index < train_trials else "validate"
        labels[trial] = _write_trial(out, trial, partition, index, frames, fps[trial], seed)
    return Release(
        out=out,
        train=tuple(names[:train_trials]),
        validate=tuple(names[train_trials:]),
        labels=labels,
        fps=fps,
    )


def copy_training_trials_as_validation(release: Release, out: Path) -> Path:
    """A copy of ``release`` at ``out`` whose validation trials are byte-identical copies of its first training
    trials (annotation, crops and video), under the validation trials' names."""
    shutil.copytree(release.out, out)
    annotations = out / ANNOTATION_ROOT
    for source, target in zip(release.train[:2], release.validate, strict=True):
        shutil.copyfile(annotations / "Train_Set" / f"{source}.txt", annotations / "Validation_Set" / f"{target}.txt")
        shutil.rmtree(out / "cropped_aligned" / target)
        shutil.copytree(out / "cropped_aligned" / source, out / "cropped_aligned" / target)
        for video in (out / "videos").glob(f"{target}.*"):
            video.unlink()
        (source_video,) = (out / "videos").glob(f"{source}.*")
        shutil.copyfile(source_video, (out / "videos" / target).with_suffix(source_video.suffix))
    return out
