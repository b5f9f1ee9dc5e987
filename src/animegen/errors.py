"""The one family of errors that ends a stage with exit code 1: its message says why, nothing is written.

Each layer raises its own kind (a stage's :class:`animegen.stages.StageError`, an artifact's
:class:`animegen.artifacts.ArtifactError`, a device's :class:`animegen.device.DeviceError`, missing FID
weights' :class:`animegen.metrics.inception.WeightsNotFoundError`); the command line catches them all
here.  A bad ``params.yaml`` is another matter (:class:`animegen.config.ParamsError`, exit code 2).
"""


class PipelineError(Exception):
    """A stage cannot produce a trustworthy output; ``str(e)`` says why and what to do."""
