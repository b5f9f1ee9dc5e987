"""``params.yaml``: loading and the two-YAML-loader cross-check (:mod:`.loading`), the schema
(:mod:`.schema`), the cross-key checks (:mod:`.checks`), the error and its wording (:mod:`.errors`), and
the one lookup of a declared name (:mod:`.lookup`).

Validation only accepts or refuses a file: it never fills in or changes a value, so it is not a code
dependency of any stage (editing it reruns nothing; see :mod:`animegen.codedeps`).  The command line
and the Snakefile validate before any stage runs; stages then read their sections directly.
"""

from animegen.config.checks import RANDOM_SUFFIX, split_names
from animegen.config.errors import EXIT_PARAMS, ParamsError
from animegen.config.loading import load_params, parse_yaml, validate
from animegen.config.lookup import entry

__all__ = ["EXIT_PARAMS", "ParamsError", "RANDOM_SUFFIX", "entry", "load_params", "parse_yaml", "split_names",
           "validate"]  # fmt: skip
