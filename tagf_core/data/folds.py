"""The six cross-validation folds of the reference (ref §2.4). Torch-free.

Fold 0 is the official split. For folds 1–5 the sorted training trials are cut into five consecutive chunks
c0..c4, the list ``[c0, c1, c2, c3, c4, official validate]`` is rotated right by the fold number, the first
five entries become the training set and the sixth the validation set. Fold k ≥ 1 therefore validates on
chunk c(5−k): fold 1 on c4, fold 5 on c0. The ``extra`` trials (unlabelled test videos) are always the
unseen partition.

Chunk rule: with n training trials sorted by name, chunk i nominally holds ⌊n/5⌋ trials and the n mod 5
left-over trials go one each to the last chunks (n = 356 gives the reference's 71/71/71/71/72). Fix of
ref §2.4: the two faces ``X_left``/``X_right`` of one video share its audio, so they must not sit on both
sides of a split. They are kept next to each other (``X_right`` follows ``X_left`` even if another name
sorts between them), and a chunk boundary that would fall between them moves one trial later, so the pair
joins the earlier chunk and that chunk grows by one while the next shrinks by one. On tiny sets (fewer than
10 training trials) a boundary also moves past the previous one, so no chunk is empty while trials remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tagf_core.data.layout import TrialRecord, paired_video
from tagf_core.errors import TagfError

NUM_FOLDS = 6  # ref §2.4: five training chunks plus the official validation set, rotated
NUM_TRAIN_CHUNKS = NUM_FOLDS - 1


@dataclass(frozen=True)
class FoldSplit:
    """Trial names of one fold, each tuple in the order the reference builds it."""

    fold: int
    train: tuple[str, ...]
    validate: tuple[str, ...]
    extra: tuple[str, ...]
    """The unseen partition: unlabelled test trials, predicted after training (ref §2.7)."""


def check_fold(fold: int) -> int:
    """Return ``fold`` if it is one of 0–5; raise TagfError otherwise."""
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < NUM_FOLDS:
        # fix of ref §2.4: the reference README offers "fold 6", which np.roll turns back into fold 0
        raise TagfError(
            f"fold {fold!r} does not exist: folds are 0–{NUM_FOLDS - 1} "
            "(the reference README's fold 6 silently repeats fold 0, so it is refused here)"
        )
    return fold


def _group_pairs(trials: Sequence[str]) -> list[list[str]]:
    """Sorted trial names as groups that must stay together: a left/right pair, or a single trial."""
    groups: list[list[str]] = []
    pair_group: dict[str, list[str]] = {}
    for trial in sorted(trials):
        key = paired_video(trial)
        if key is None:
            groups.append([trial])
        elif key in pair_group:
            pair_group[key].append(trial)  # `_left` sorts before `_right`, so the pair reads left, right
        else:
            pair_group[key] = [trial]
            groups.append(pair_group[key])
    return groups


def split_training_chunks(train_trials: Sequence[str], num_chunks: int = NUM_TRAIN_CHUNKS) -> list[list[str]]:
    """Cut the training trials into ``num_chunks`` consecutive chunks, keeping left/right pairs together.

    See the module docstring for the rule. A chunk comes out empty only when there are fewer trials than
    chunks, a pair counting as one trial.
    """
    groups = _group_pairs(train_trials)
    ordered = [trial for group in groups for trial in group]
    # index of the first trial of each group: the only places a boundary may fall
    group_starts: set[int] = set()
    position = 0
    for group in groups:
        group_starts.add(position)
        position += len(group)
    n = len(ordered)
    size, remainder = divmod(n, num_chunks)
    boundaries = [0]
    for i in range(1, num_chunks):
        # chunks before index num_chunks - remainder hold `size`; the later ones hold `size + 1` (ref §2.4)
        nominal = i * size + max(0, i - (num_chunks - remainder))
        # tiny sets only (n < 10): step past the previous boundary so no chunk is empty while trials remain
        boundary = min(max(nominal, boundaries[-1] + 1), n)
        if boundary < n and boundary not in group_starts:
            boundary += 1  # it would split X_left | X_right: the pair joins the earlier chunk
        boundaries.append(boundary)
    boundaries.append(n)
    return [ordered[start:end] for start, end in zip(boundaries[:-1], boundaries[1:], strict=True)]


def split_fold(records: Sequence[TrialRecord], fold: int, *, debug: bool = False) -> FoldSplit:
    """Split the manifest's trials into the train / validate / extra trials of ``fold`` (ref §2.4).

    ``debug`` keeps one trial per chunk, as the reference's ``-debug 1``: 5 training trials, 1 validation
    trial and 1 unseen trial (fewer on a tiny set).

    Raises:
        TagfError: the fold is not 0–5, or it would have no training or no validation trials.
    """
    check_fold(fold)
    by_partition: dict[str, list[str]] = {"train": [], "validate": [], "extra": []}
    for record in records:
        by_partition[record.partition].append(record.trial)
    official_validate = sorted(by_partition["validate"])
    chunks = [*split_training_chunks(by_partition["train"]), official_validate]
    extra = tuple(sorted(by_partition["extra"]))
    if debug:
        chunks = [chunk[:1] for chunk in chunks]
        extra = extra[:1]
    # fix of ref §2.4: rotate the Python list; np.roll on ragged arrays needs numpy < 1.24
    rolled = chunks[len(chunks) - fold :] + chunks[: len(chunks) - fold]
    train = tuple(trial for chunk in rolled[:-1] for trial in chunk)
    validate = tuple(rolled[-1])
    if not train or not validate:
        raise TagfError(
            f"fold {fold} has {len(train)} training and {len(validate)} validation trials; both must be non-empty "
            f"(the manifest has {len(by_partition['train'])} train and {len(official_validate)} validate trials, "
            f"folds 1–{NUM_TRAIN_CHUNKS} cut the train trials into {NUM_TRAIN_CHUNKS} chunks)"
        )
    return FoldSplit(fold=fold, train=train, validate=validate, extra=extra)
