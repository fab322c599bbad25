"""Typed errors of fade-hub: each carries one actionable line for the user.

The CLI prints ``error: <message>`` and exits with status 2 for any ``FadeHubError``;
library users catch the specific class. ``NETWORK_ERRORS`` is what an unreachable Hub raises.
"""

import httpx2
from huggingface_hub.errors import OfflineModeIsEnabled

# What a Hub that cannot be reached raises through huggingface_hub 2.x (it sends HTTP with httpx2).
NETWORK_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError)



EXIT_USER_ERROR = 2  # the exit status of every command refused for bad input (argparse's usage status)


class FadeHubError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` says how, in one line."""


class ModelNotFound(FadeHubError):
    """The model ID or local folder does not exist or cannot be read."""


class UnsupportedTask(FadeHubError):
    """The model's task is not one fade-hub can explore."""


class RemoteCodeRequired(FadeHubError):
    """The model needs custom code and ``--trust-remote-code`` was not given."""


class BadSpace(FadeHubError):
    """A concept-space YAML is malformed; the message names the offending key."""


class BadSeeds(FadeHubError):
    """A seed source is missing, empty, or lacks the needed columns."""


class LabelAlignmentError(FadeHubError):
    """Dataset labels cannot be matched to the model's ``id2label``."""


class BadConfig(FadeHubError):
    """An option or config value is out of range or inconsistent."""


class ResumeMismatch(FadeHubError):
    """``--resume`` points at a run of another model, task or space."""


class RunNotFound(FadeHubError):
    """A run directory or run dataset does not exist or is incomplete."""


class RunsDiffer(FadeHubError):
    """Two runs that cannot be compared: the same run twice, or runs over different concept spaces or tasks."""


class HubUnreachable(FadeHubError):
    """The Hub endpoint could not be reached; the local data is kept."""


class RunDamaged(RunNotFound):
    """A file of a run is corrupt (a broken query-log line, a truncated parquet); the message names it."""


class BadRepoId(FadeHubError):
    """A repo id that the Hub would refuse (wrong shape or characters)."""


class AdapterMismatch(FadeHubError):
    """An adapter applied to a model it was not trained for."""


class EndpointFailed(FadeHubError):
    """An inference endpoint or provider kept failing, refused a request or sent an answer that is not one; the run
    stops, keeping every answer it got (each is recorded as it arrives)."""


class FolderBusy(FadeHubError):
    """Another fade-hub process is writing the folder (a run being explored or resumed)."""
