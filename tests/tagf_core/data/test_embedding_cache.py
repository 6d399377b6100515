"""The frozen-backbone embedding cache (training/embed.py) and its window Dataset: what the eval model computes,
safe reuse."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tagf_core.data.dataset import EmbeddingWindowDataset, WindowDataset
from tagf_core.data.layout import TrialRecord, read_manifest, write_manifest
from tagf_core.errors import TagfError
from tagf_core.model import TAGFModel, build_tagf
from tagf_core.training import embed

WriteProcessed = Callable[[Sequence[tuple[str, str, int]]], Path]
L, HOP = 8, 5
# IR-50 costs ~50 ms a face on a CPU, so the trials stay short; beta and gamma are shorter than L (padded)
TRIALS = [("alpha", "train", 12), ("beta", "validate", 5), ("gamma", "extra", 3)]
NAMES = [name for name, _, _ in TRIALS]


@pytest.fixture(scope="module")
def model() -> TAGFModel:
    """Shared and never changed: tests that change weights work on a deep copy."""
    torch.manual_seed(0)
    return build_tagf(window_len=L).eval()


@pytest.fixture
def root(write_processed: WriteProcessed) -> Path:
    return write_processed(TRIALS)


CROP = 40


def records_of(root: Path, trials: Sequence[str]) -> list[TrialRecord]:
    known = {r.trial: r for r in read_manifest(root)}
    return [known[t] for t in trials]


def embedding_dataset(cache_dir: Path, root: Path, trials: Sequence[str] = NAMES) -> EmbeddingWindowDataset:
    return EmbeddingWindowDataset(
        cache_dir, root, records_of(root, trials), emotion="valence", window_len=L, hop_len=HOP, crop_size=CROP
    )


def build_embedding_cache(root: Path, model: TAGFModel, records: Sequence[TrialRecord], **kwargs: object) -> Path:
    options: dict[str, object] = {"crop_size": CROP, "batch_size": 256, **kwargs}
    return embed.build_embedding_cache(root, model, records, **options)  # type: ignore[arg-type]


def embedding_digest(model: TAGFModel, records: Sequence[TrialRecord]) -> str:
    return embed.embedding_digest(model, records, CROP)


def file_stamps(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time in ns."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def stack(samples: Sequence[Mapping[str, object]], key: str) -> torch.Tensor:
    return torch.stack([s[key] for s in samples])  # type: ignore[misc]


def test_cached_windows_give_what_the_eval_model_computes(root: Path, model: TAGFModel) -> None:
    cache_dir = build_embedding_cache(root, model, read_manifest(root), batch_size=4)  # chunks split alpha
    frozen = embedding_dataset(cache_dir, root)
    images = WindowDataset(
        root, records_of(root, NAMES), emotion="valence", train=False, window_len=L, hop_len=HOP, crop_size=CROP
    )
    assert frozen.windows == images.windows and len(frozen) == 4  # alpha 0 and tail 4, beta 0, gamma 0
    emb = [frozen[i] for i in range(len(frozen))]
    img = [images[i] for i in range(len(images))]
    for e, i in zip(emb, img, strict=True):
        # every field but the images is WindowSample's: labels, mask, frame numbers, trial, start, length
        shared = e.keys() - {"video_embeddings", "audio_embeddings"}
        assert shared == i.keys() - {"video", "logmel"} and {"label", "mask", "length"} <= shared
        for key in shared:
            a, b = e[key], i[key]  # type: ignore[literal-required]
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, key
        assert e["video_embeddings"].shape == (L, 512) and e["video_embeddings"].dtype == torch.float32
        assert e["audio_embeddings"].shape == (L, 128) and e["audio_embeddings"].dtype == torch.float32
        # padded frames: what the backbones give for the black face and silent patch WindowDataset pads with
        # (real frames are checked through the forward below; IR-50 is too slow on a CPU to embed them twice)
        n = e["length"]
        torch.testing.assert_close(e["video_embeddings"][n:], model.embed_faces(i["video"][n:]), rtol=0, atol=1e-5)
        torch.testing.assert_close(e["audio_embeddings"][n:], model.embed_logmel(i["logmel"][n:]), rtol=0, atol=1e-5)
    assert [e["length"] for e in emb] == [8, 8, 5, 3]  # two windows with padded frames take part

    with torch.no_grad():
        frozen_out = model.forward_from_embeddings(stack(emb, "video_embeddings"), stack(emb, "audio_embeddings"))
        full_out = model(stack(img, "video"), stack(img, "logmel"))
    assert frozen_out.shape == (4, L, 1)
    torch.testing.assert_close(frozen_out, full_out, rtol=0, atol=1e-5)


def test_digest_follows_backbone_weights_and_trial_inputs_only(
    model: TAGFModel, record_factory: Callable[..., TrialRecord]
) -> None:
    records = [record_factory(name, partition, length) for name, partition, length in TRIALS]
    digest = embedding_digest(model, records)
    assert len(digest) == 64 and embedding_digest(model, records[::-1]) == digest  # order of the records is free

    changed = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in changed.named_parameters():
            if name.startswith(("visual_backbone.", "audio_backbone.")):
                continue
            parameter.add_(1.0)  # the layers after the backbones are what frozen mode trains; they do not enter
    assert embedding_digest(changed, records) == digest

    def digest_with_change(tensor: torch.Tensor) -> str:
        """The digest after nudging one element of a backbone tensor of ``changed``, which is then restored."""
        with torch.no_grad():
            tensor.view(-1)[0] += 1e-3
            try:
                return embedding_digest(changed, records)
            finally:
                tensor.view(-1)[0] -= 1e-3

    visual, audio = changed.visual_backbone.state_dict(), changed.audio_backbone.state_dict()  # shares storage
    nudged = {
        digest_with_change(visual["input_layer.0.weight"]),
        digest_with_change(visual["output_layer.4.running_mean"]),  # a buffer: eval-mode BatchNorm reads it
        digest_with_change(audio["embeddings.4.bias"]),
    }
    assert embedding_digest(changed, records) == digest  # restored weights, the same digest again
    assert len(nudged) == 3 and digest not in nudged

    reprocessed = [dataclasses.replace(records[1], input_digest="1" * 64) if r is records[1] else r for r in records]
    assert embedding_digest(model, reprocessed) != digest  # re-preprocessed data, another folder


def test_second_build_reuses_the_cache_and_adds_what_is_missing(root: Path, model: TAGFModel) -> None:
    records = read_manifest(root)
    built: list[str] = []
    cache_dir = build_embedding_cache(root, model, records, on_trial=built.append)
    assert cache_dir == root / "embeddings" / embedding_digest(model, records)[:16]
    assert built == sorted(NAMES)
    stamps = file_stamps(cache_dir)
    assert set(stamps) == {
        "cache.json",
        "padding.npz",
        *(f"{t}/{f}" for t in NAMES for f in ("video.npy", "audio.npy")),
    }  # no staging folders left behind
    cache = json.loads((cache_dir / "cache.json").read_text())
    assert cache["digest"] == embedding_digest(model, records) and cache["tagf_version"]
    assert cache["trials"]["alpha"] == {"input_digest": records[0].input_digest, "length": 12}

    again: list[str] = []
    assert build_embedding_cache(root, model, records, on_trial=again.append) == cache_dir
    assert again == [] and file_stamps(cache_dir) == stamps  # nothing recomputed, nothing rewritten

    # an interrupted build: beta never finished, cache.json (written last) never came
    beta = np.load(cache_dir / "beta" / "video.npy")
    shutil.rmtree(cache_dir / "beta")
    (cache_dir / "cache.json").unlink()
    with pytest.raises(TagfError, match="cache.json"):
        embedding_dataset(cache_dir, root)
    resumed: list[str] = []
    build_embedding_cache(root, model, records, on_trial=resumed.append)
    assert resumed == ["beta"]
    assert np.array_equal(np.load(cache_dir / "beta" / "video.npy"), beta)
    after = file_stamps(cache_dir)
    assert {k: after[k] for k in ("alpha/video.npy", "gamma/audio.npy")} == {
        k: stamps[k] for k in ("alpha/video.npy", "gamma/audio.npy")
    }

    # a damaged array is recomputed, not served
    (cache_dir / "gamma" / "audio.npy").write_bytes(b"\x93NUMPY broken")
    repaired: list[str] = []
    build_embedding_cache(root, model, records, on_trial=repaired.append)
    assert repaired == ["gamma"]
    assert len(embedding_dataset(cache_dir, root)) == 4


def break_files() -> Iterator[tuple[str, Callable[[Path], object]]]:
    """(name of the file the error must give, how to break it) for each kind of damage."""
    yield "cache.json", lambda c: (c / "cache.json").unlink()
    yield "cache.json", lambda c: (c / "cache.json").write_text("{not json")
    yield "padding.npz", lambda c: (c / "padding.npz").unlink()
    yield "padding.npz", lambda c: (c / "padding.npz").write_bytes(b"PK\x03\x04 truncated")
    yield "alpha/audio.npy", lambda c: (c / "alpha" / "audio.npy").unlink()
    yield "alpha/video.npy", lambda c: (c / "alpha" / "video.npy").write_bytes(b"")
    yield "beta/video.npy", lambda c: np.save(c / "beta" / "video.npy", np.zeros((6, 512), np.float32))  # T is 5
    yield "gamma/audio.npy", lambda c: np.save(c / "gamma" / "audio.npy", np.zeros((3, 128), np.float64))


def test_a_broken_cache_file_is_named(root: Path, model: TAGFModel) -> None:
    cache_dir = build_embedding_cache(root, model, read_manifest(root))
    for index, (name, damage) in enumerate(break_files()):
        copy_dir = cache_dir.with_name(f"damaged{index}")
        shutil.copytree(cache_dir, copy_dir)
        damage(copy_dir)
        with pytest.raises(TagfError, match=str(copy_dir / name)):
            embedding_dataset(copy_dir, root)


def test_a_cache_of_other_data_is_refused(root: Path, model: TAGFModel) -> None:
    records = read_manifest(root)
    partial = build_embedding_cache(root, model, [r for r in records if r.trial != "alpha"])
    with pytest.raises(TagfError, match="'alpha' is not in this embedding cache"):
        embedding_dataset(partial, root)
    assert len(embedding_dataset(partial, root, ["beta", "gamma"])) == 2

    # gamma preprocessed again: the old cache must not serve it
    write_manifest(root, [dataclasses.replace(r, input_digest="2" * 64) if r.trial == "gamma" else r for r in records])
    with pytest.raises(TagfError, match="'gamma' was embedded from other preprocessed data"):
        embedding_dataset(partial, root, ["beta", "gamma"])


def test_dataloader_with_two_workers_and_small_pickles(root: Path, model: TAGFModel) -> None:
    cache_dir = build_embedding_cache(root, model, read_manifest(root))
    ds = embedding_dataset(cache_dir, root)
    direct = [ds[i] for i in range(len(ds))]  # opens the memory maps in this process
    assert isinstance(ds.trial_arrays("alpha")["video"], np.memmap)
    assert len(pickle.dumps(ds)) < 20_000  # the maps are re-opened, not copied (alpha alone holds 24 kB)
    loaded = [
        sample
        for batch in DataLoader(ds, batch_size=3, num_workers=2)
        for sample in ({key: value[j] for key, value in batch.items()} for j in range(len(batch["trial"])))
    ]
    assert len(loaded) == len(direct)
    for a, b in zip(direct, loaded, strict=True):
        for key in a:
            value = b[key]  # type: ignore[literal-required]
            if isinstance(value, torch.Tensor) and value.ndim == 0:
                value = value.item()
            if isinstance(value, torch.Tensor):
                assert torch.equal(a[key], value), key  # type: ignore[literal-required]
            else:
                assert a[key] == value, key  # type: ignore[literal-required]
