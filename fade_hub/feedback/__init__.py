"""Human feedback on failure regions, cells and examples: records, a crash-safe writer, the reader (``load``); the
app and deploy.

``fade_hub.feedback.load(REPO_OR_DIR).resolved()`` gives the latest verdict per run, user and target, without
withdrawn verdicts and without the records of users an operator excluded (``exclude_user``).
The Gradio app lives in ``fade_hub.feedback.app`` and Space deployment in ``fade_hub.feedback.deploy``;
importing this package loads neither.
"""

from .exclude import ExcludeConfig, exclude_user
from .records import (
    MAX_TEXT,
    RECORD_FIELDS,
    VERDICTS,
    WITHDRAWN,
    FeedbackRecord,
    FeedbackSet,
    FeedbackWriter,
    InvalidFeedback,
    default_staging_dir,
    ensure_feedback_repo,
    load,
    make_exclusion,
    make_record,
    make_withdrawal,
    read_records,
)

__all__ = [
    "MAX_TEXT",
    "RECORD_FIELDS",
    "VERDICTS",
    "WITHDRAWN",
    "ExcludeConfig",
    "FeedbackRecord",
    "FeedbackSet",
    "FeedbackWriter",
    "InvalidFeedback",
    "default_staging_dir",
    "ensure_feedback_repo",
    "exclude_user",
    "load",
    "make_exclusion",
    "make_record",
    "make_withdrawal",
    "read_records",
]
