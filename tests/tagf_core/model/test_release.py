"""Gradual release: the three stages hold exactly the reference's parameter tensors (ref §3.4)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tagf_core.model import build_tagf

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _reference_parameter_names(table: dict[str, tuple[int, ...]], prefix: str = "") -> list[str]:
    """list(module.parameters()) of the reference module, as names: its state-dict order minus buffers."""
    return [key.removeprefix(prefix) for key in table if not key.endswith(_BUFFERS)]


def _names(module: nn.Module, parameters: tuple[nn.Parameter, ...]) -> set[str]:
    by_id = {id(p): name for name, p in module.named_parameters()}
    return {by_id[id(p)] for p in parameters if id(p) in by_id}


def test_release_stages_hold_the_reference_index_groups(key_table: Callable[[str], dict[str, tuple[int, ...]]]) -> None:
    visual_names = _reference_parameter_names(key_table("res50_ir_state_dict.tsv"), prefix="backbone.")
    audio_names = _reference_parameter_names(key_table("vggish_state_dict.tsv"))
    assert len(visual_names) == 189 and len(audio_names) == 18  # ref §1.2, §1.3
    # ref §3.4: indices into list(VisualBackbone.parameters()) / list(VGGish.parameters()), per release
    reference = [
        (visual_names[4:10], audio_names[16:18]),
        (visual_names[163:187], audio_names[14:16]),
        (visual_names[142:163], audio_names[12:14]),
    ]
    model = build_tagf(window_len=4)
    stages = model.release_stages()
    assert [s.names for s in stages] == [
        ("visual.output_layer", "audio.fc3"),
        ("visual.stage4", "audio.fc2"),
        ("visual.stage3_last3", "audio.fc1"),
    ]
    for stage, (visual, audio) in zip(stages, reference, strict=True):
        assert _names(model.visual_backbone, stage.parameters) == set(visual)
        assert _names(model.audio_backbone, stage.parameters) == set(audio)
        assert len(stage.parameters) == len(visual) + len(audio)
    # and the parameter counts of §1.10
    counts = [sum(p.numel() for p in s.parameters) for s in stages]
    assert counts == [6_556_160 + 524_416, 13_115_392 + 16_781_312, 3_542_784 + 50_335_744]


def test_stages_are_disjoint_and_only_backbone_tensors() -> None:
    model = build_tagf(window_len=4)
    backbone = {id(p) for p in model.backbone_parameters()}
    seen: set[int] = set()
    for stage in model.release_stages():
        ids = {id(p) for p in stage.parameters}
        assert ids <= backbone and not ids & seen
        seen |= ids
