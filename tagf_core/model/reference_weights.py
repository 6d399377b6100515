"""Reference weights: the key mapping from the reference code's state dicts onto TAGFModel, nothing else.

Three kinds of file are read, always with ``torch.load(..., weights_only=True)``:
  * a whole reference ``LFAN`` state dict (``model_state_dict<ccc>.pth``; keys as lfan_state_dict.tsv),
  * the IR-50 backbone ``res50_ir_0.887.pth`` (keys ``backbone.*`` and the unused ``logits.*``),
  * the VGGish backbone ``vggish.pth`` (torchvggish layout: ``features.*``, ``embeddings.*``).
Every key the model uses must be present with the right shape; keys of the reference's dead modules are
ignored (listed at debug level); anything else is an error naming the key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from tagf_core.errors import TagfError
from tagf_core.model.tagf import TAGFModel, build_tagf
from tagf_core.torch_files import load_torch

log = logging.getLogger(__name__)

BACKBONE_WARNING = (
    "no {which} backbone weights given: it starts from random initialisation, so results will NOT be "
    "comparable to the paper's (pass the reference's {filename})"
)

# (reference key pattern, our key template or None for a dead module of the reference, ref §1.11)
_LFAN_KEYS: tuple[tuple[str, str | None], ...] = (
    (r"spatial\.visual\.backbone\.(.+)", r"visual_backbone.\1"),
    (r"spatial\.visual\.logits\..+", None),  # the 8-class FER head of res50_ir_0.887, unused
    (r"spatial\.audio\.backbone\.(.+)", r"audio_backbone.\1"),
    (r"temporal\.video\.network\.(\d+)\.net\.0\.(.+)", r"video_tcn.network.\1.conv1.\2"),  # alias of conv1
    (r"temporal\.video\.network\.(\d+)\.net\.4\.(.+)", r"video_tcn.network.\1.conv2.\2"),  # alias of conv2
    (r"temporal\.video\.(.+)", r"video_tcn.\1"),
    (r"temporal\.logmel\.network\.(\d+)\.net\.0\.(.+)", r"audio_tcn.network.\1.conv1.\2"),
    (r"temporal\.logmel\.network\.(\d+)\.net\.4\.(.+)", r"audio_tcn.network.\1.conv2.\2"),
    (r"temporal\.logmel\.(.+)", r"audio_tcn.\1"),
    (r"temporal\.(bert|vggish)\..+", None),  # branches computed and thrown away by the reference
    (r"bn\.video\.(.+)", r"video_norm.\1"),
    (r"bn\.logmel\.(.+)", r"audio_norm.\1"),
    (r"bn\.(bert|vggish)\..+", None),
    *(
        (
            rf"TAGF\.coattn\.dcn_layers\.(\d+)\.dense_coattn\.{theirs}\.(.+)",
            rf"cross_attention.steps.\1.attention.{ours}.\2",
        )
        for theirs, ours in (
            ("query_linear", "joint_projection"),
            ("key1_linear", "video_key"),
            ("key2_linear", "audio_key"),
            ("value1_linear", "video_value"),
            ("value2_linear", "audio_value"),
        )
    ),
    (r"TAGF\.coattn\.dcn_layers\.(\d+)\.linears\.0\.0\.(.+)", r"cross_attention.steps.\1.video_projection.0.\2"),
    (r"TAGF\.coattn\.dcn_layers\.(\d+)\.linears\.1\.0\.(.+)", r"cross_attention.steps.\1.audio_projection.0.\2"),
    (r"TAGF\.video_temporal_encoder\.(.+)", r"video_gate.encoder.\1"),
    (r"TAGF\.audio_temporal_encoder\.(.+)", r"audio_gate.encoder.\1"),
    (r"TAGF\.(Joint|vregressor|aregressor)\..+", None),
    (r"regressor1\.(.+)", r"head.hidden.\1"),
    (r"bn1\.(.+)", r"head.norm.\1"),
    (r"regressor2\.(.+)", r"head.out.\1"),
)
_VISUAL_FILE_KEYS: tuple[tuple[str, str | None], ...] = (
    (r"backbone\.(.+)", r"\1"),
    (r"logits\..+", None),
)
_AUDIO_FILE_KEYS: tuple[tuple[str, str | None], ...] = ((r"((features|embeddings)\..+)", r"\1"),)
_WINDOW_KEY = "TAGF.coattn.dcn_layers.0.dense_coattn.key1_linear.weight"


def _translate(
    state_dict: Mapping[str, Tensor], table: tuple[tuple[str, str | None], ...], source: str
) -> dict[str, Tensor]:
    """Rename the keys of ``state_dict`` through ``table``; drop dead ones; refuse unknown or clashing ones."""
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):  # saved from a DataParallel wrapper
        state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    compiled = [(re.compile(pattern), template) for pattern, template in table]
    translated: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in state_dict.items():
        for pattern, template in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            if template is None:
                ignored.append(key)
                break
            ours = match.expand(template)
            if ours in translated and not torch.equal(translated[ours], value):
                raise TagfError(f"{source}: key {key} disagrees with the tensor it aliases ({ours})")
            translated[ours] = value
            break
        else:
            raise TagfError(f"{source}: unexpected key {key} (not part of the reference model)")
    if ignored:
        log.debug("%s: ignored %d keys of modules the reference never uses: %s", source, len(ignored), ignored)
    return translated


def _load_into(module: nn.Module, weights: dict[str, Tensor], source: str) -> None:
    """Copy ``weights`` into ``module``, failing on the first missing or mis-shaped key."""
    expected = module.state_dict()
    for key, target in expected.items():
        if key not in weights:
            raise TagfError(f"{source}: missing key {key} (shape {tuple(target.shape)})")
        if tuple(weights[key].shape) != tuple(target.shape):
            raise TagfError(
                f"{source}: key {key} has shape {tuple(weights[key].shape)}, the model needs {tuple(target.shape)}"
            )
    module.load_state_dict({k: weights[k] for k in expected}, strict=True)


def from_reference_state_dict(state_dict: Mapping[str, Tensor], source: str = "reference state dict") -> TAGFModel:
    """Build a TAGFModel from a state dict saved from the reference ``LFAN``; returned in eval mode on the CPU.

    The window length is read from the cross-attention key shape (300 in the reference).

    Raises:
        TagfError: a key the model uses is missing or mis-shaped, or a key belongs to no reference module.
    """
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise TagfError(f"{source}: not a state dict (a mapping of names to tensors)")
    weights = _translate(state_dict, _LFAN_KEYS, source)
    window_key = "cross_attention.steps.0.attention.video_key.weight"
    if window_key not in weights:
        raise TagfError(f"{source}: missing key {_WINDOW_KEY}")
    model = build_tagf(window_len=int(weights[window_key].shape[0]))
    _load_into(model, weights, source)
    return model.eval()


def _read_weights_file(path: Path) -> dict[str, Tensor]:
    path = Path(path)
    loaded = load_torch(path, "weight file")
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise TagfError(f"{path}: holds a {type(loaded).__name__}, not a state dict of tensors")
    return dict(loaded)


def load_reference_checkpoint(path: Path) -> TAGFModel:
    """``from_reference_state_dict`` on a file (``torch.load(weights_only=True)``)."""
    return from_reference_state_dict(_read_weights_file(path), str(path))


def load_visual_backbone_weights(model: TAGFModel, path: Path) -> None:
    """Load ``res50_ir_0.887.pth`` (IR-50 + unused 8-class logits) into the visual backbone."""
    weights = _translate(_read_weights_file(path), _VISUAL_FILE_KEYS, str(path))
    _load_into(model.visual_backbone, weights, str(path))


def load_audio_backbone_weights(model: TAGFModel, path: Path) -> None:
    """Load the torchvggish release ``vggish.pth`` into the audio backbone."""
    weights = _translate(_read_weights_file(path), _AUDIO_FILE_KEYS, str(path))
    _load_into(model.audio_backbone, weights, str(path))


_warned: set[str] = set()


def load_backbone_weights(model: TAGFModel, visual: Path | None, audio: Path | None) -> None:
    """Load the backbone files the user gave; for each one not given, warn once per process, loudly."""
    for which, path, filename, loader in (
        ("visual", visual, "res50_ir_0.887.pth", load_visual_backbone_weights),
        ("audio", audio, "vggish.pth", load_audio_backbone_weights),
    ):
        if path is not None:
            loader(model, path)
        elif which not in _warned:
            _warned.add(which)
            log.warning(BACKBONE_WARNING.format(which=which, filename=filename))
