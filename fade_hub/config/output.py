"""The run a command reads (``SourceOptions``: ``check``, ``mitigate``, ``rejudge``), and where a command's result
goes and who sees it once pushed (``OutputOptions``: ``explore``'s run, ``rejudge``'s new run, ``mitigate``'s adapter,
``space deploy``'s Space, the ``demo``), each section shared by the commands named, each offering the options it has
with its own wording."""

from __future__ import annotations

from dataclasses import dataclass

from fade_hub.options import option

OUTPUT_GROUP = "output"


@dataclass
class SourceOptions:
    """The run a command reads (its positional argument)."""

    run: str = option("", help="The run: a run directory or the dataset repo it was pushed to.", cli=False)


@dataclass
class OutputOptions:
    """Where the result goes, whether it continues an earlier one, and who sees it once pushed (the help texts are
    ``explore``'s; the other commands give theirs)."""

    output: str | None = option(None, group=OUTPUT_GROUP, help="Run directory (default fade-runs/MODEL_NAME).")
    resume: bool = option(False, group=OUTPUT_GROUP, help="Continue the run in --output where it stopped.")
    push_to_hub: str | None = option(None, group=OUTPUT_GROUP, metavar="REPO_ID",
                                     help="Push the finished run as a dataset repo.")
    private: bool = option(False, group=OUTPUT_GROUP, help="Create the pushed dataset repo as private.")
    public: bool = option(False, group=OUTPUT_GROUP, help="Push in public even when the model or the seeds are private "
                          "or gated on the Hub (such runs are pushed private otherwise).")
    show_progress: bool = option(True, group=OUTPUT_GROUP, flag="--no-progress", help="Hide the progress bar.")
