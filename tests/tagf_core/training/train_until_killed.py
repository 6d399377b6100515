"""Train test_loop.py's tiny run in this process and SIGKILL it at one write point of its run folder.

    python train_until_killed.py TEST_LOOP PROCESSED OUTPUT_ROOT MAX_EPOCHS FILE OCCURRENCE PHASE

Every file of the run folder that matters is written through a temporary file and ``os.replace``; the process
kills itself at the OCCURRENCE-th replacement of FILE (e.g. ``checkpoint.pt 2``), ``before`` it (the temporary file
written, the old file still in place) or ``after`` it. Prints the replaced files in order (OCCURRENCE 0: no kill).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    test_loop, processed, output_root, max_epochs, kill_file, occurrence, phase = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("tagf_tests_test_loop", test_loop)
    assert spec is not None and spec.loader is not None
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)

    replace, seen = os.replace, {}

    def replace_or_die(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        name = Path(target).name
        seen[name] = seen.get(name, 0) + 1
        print(name, flush=True)
        kill = name == kill_file and seen[name] == int(occurrence)
        if kill and phase == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        replace(source, target, *args, **kwargs)
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace_or_die  # type: ignore[assignment]
    cfg = helpers._config(Path(processed), Path(output_root), max_epochs=int(max_epochs))
    helpers._run(cfg, helpers.InMemoryTracker())


if __name__ == "__main__":
    main()
