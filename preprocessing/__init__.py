"""Raw Aff-Wild2 release (or `tagf synth` output) → per-trial arrays and manifest (see tagf_core.data.layout).

Independent of training: imports only the torch-free layout, errors and atomic-write modules of tagf_core.
"""

from preprocessing.runner import PreprocessReport, import_reference_dataset, preprocess_release

__all__ = ["PreprocessReport", "import_reference_dataset", "preprocess_release"]
