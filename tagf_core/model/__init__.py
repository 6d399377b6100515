"""The TAGF network (Time-aware Gated Fusion, arXiv 2507.02080), one file per box of its figure.

Letters used in shapes throughout: B = batch, L = frames per window, D = features, M = fusion steps
(M = 3: the input and the two cross-attention steps), N = frames in a flat batch (B·L).

    video  B×L×3×40×40 → visual_backbone (IR-50) → B×L×512 → video_tcn + BN → B×L×256 ─┐
                                                                                      ├→ fuse → B×L×384 → head → B×L×1
    logmel B×L×96×64   → audio_backbone (VGGish) → B×L×128 → audio_tcn + BN → B×L×128 ─┘

fuse (TAGF, ref §1.6–1.7): L2-normalise both, two joint cross-attention steps, then per stream a BiLSTM
gate over [input, step 1, step 2] that weights the un-encoded steps.

Torch is imported by these modules; import ``tagf_core.model`` only where a network is needed.
"""

from tagf_core.model.reference_weights import (
    BACKBONE_WARNING,
    from_reference_state_dict,
    load_audio_backbone_weights,
    load_visual_backbone_weights,
)
from tagf_core.model.tagf import ReleaseStage, TAGFModel, build_tagf, build_tagf_from_config

__all__ = [
    "BACKBONE_WARNING",
    "ReleaseStage",
    "TAGFModel",
    "build_tagf",
    "build_tagf_from_config",
    "from_reference_state_dict",
    "load_audio_backbone_weights",
    "load_visual_backbone_weights",
]
