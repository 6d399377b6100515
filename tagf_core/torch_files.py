"""Reading a ``.pt``/``.pth`` file as plain data: ``torch.load(weights_only=True)`` on the CPU, every failure
one TagfError naming the file.

``weights_only`` refuses a pickle that would rebuild other objects than tensors and plain values (rebuilding
one can run any code). torch's message then advises re-running with ``weights_only=False``; for a user of
this tool that advice is unsafe, and there is no flag to follow it, so it is never passed on.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from tagf_core.errors import TagfError

_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
_REFUSED_OBJECT = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module \S+ is blocked)")


def load_torch(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; ``what`` names the file in errors (``"checkpoint"``).

    Raises:
        TagfError: one line naming ``path``: it is missing, damaged, or holds objects other than tensors.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise TagfError(f"{path}: {what} not found") from e
    except pickle.UnpicklingError as e:
        raise TagfError(f"{path}: {_refusal(str(e), what)}") from e
    except Exception as e:  # torch raises several types for a damaged file
        raise TagfError(f"{path}: unreadable {what} ({type(e).__name__}: {_first_line(str(e))})") from e


def _refusal(message: str, what: str) -> str:
    """What an UnpicklingError says, without torch's advice: a refused object (by name), else damage."""
    if _WEIGHTS_ONLY_REFUSAL not in message:
        return f"unreadable {what} ({_first_line(message)})"
    refused = _REFUSED_OBJECT.search(message)
    if refused:
        return f"{what} holds objects other than tensors ({refused.group(1)}); not loaded, for safety"
    # torch's text, its advice and its documentation link, then the unpickler's own words: keep only those
    detail = [line.strip() for line in message.splitlines() if line.strip() and "torch.load" not in line]
    return f"unreadable {what} (not a PyTorch file of tensors: {detail[-1] if detail else 'refused'})"


def _first_line(message: str) -> str:
    return message.strip().split("\n", 1)[0]
