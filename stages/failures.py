"""How a stage ends when it cannot finish: one line for what a user can fix, a summary line
over the traceback for a bug, KILLED runs for a signal.

- Bad params: the ParamsError's lines (one per problem), exit status 2 (a usage error, as
  argparse's; the flow and tests rely on it).
- Bad inputs a user can fix (unreadable files, missing labels, an unwritable MLflow store,
  an unreachable tracking server or artifact store, an unavailable device, a missing input
  file, no permission, a full disk, no memory):
  ``stages.<stage>: <Type>: <message>[; <what to do>]``, exit status 1, no traceback.
- Anything else is a bug: ``stages.<stage>: unexpected <Type>: <message> (traceback
  below)``, then the traceback, exit status 1.
- SIGTERM (what DVC, Prefect and ``kill`` send) and SIGINT (Ctrl-C): the stage's MLflow
  run and its parent are marked KILLED (:func:`simgan.core.tracking.stage_run`), one line,
  exit status 128 + the signal number, as a shell reports it.
In every case but a signal the stage's MLflow run is FAILED. ``SIMGAN_TRACEBACK=1`` adds
the traceback to the one-line cases too.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from simgan.core.config import ParamsError
from simgan.core.errors import UserError
from simgan.core.ingest.common import IngestError, NoLabelsError
from simgan.core.tracking import StoreError, server_failure

PARAMS_STATUS = 2
FAILED_STATUS = 1
USER_ERRORS = (IngestError, NoLabelsError, StoreError, UserError)
"""Errors whose message already says what is wrong and what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and MLflow see it as
    they see Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def advice(exc: BaseException) -> str | None:
    """What to do about an OS-level failure a user can fix, or None if it is not one."""
    if isinstance(exc, FileNotFoundError):
        return "run the stages before this one first (dvc repro runs them in order)"
    if isinstance(exc, PermissionError):
        return "make the path writable, or run where you may write"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "free disk space (df -h .) and run the stage again"
    if isinstance(exc, MemoryError):
        return "lower the batch_size / chunk_size / n_per_set params, or free memory"
    if server_failure(exc):
        return ("the MLflow tracking server (MLFLOW_TRACKING_URI) or its artifact store "
                "stopped answering; check its log, then run the stage again (docs/scale.md)")
    return None


def one_line(stage: str, exc: BaseException, hint: str | None = None) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"stages.{stage}: {type(exc).__name__}: {text}" + (f"; {hint}" if hint else "")


@contextmanager
def reported(stage: str) -> Iterator[None]:
    """Run a stage's work; turn how it fails into the output and exit status above."""
    owner = os.getpid()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker: die as SIGTERM would have it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except ParamsError as exc:
        _fail(f"stages.{stage}: {exc}", PARAMS_STATUS, exc)
    except USER_ERRORS as exc:
        _fail(one_line(stage, exc), FAILED_STATUS, exc)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        print(f"stages.{stage}: stopped by {signal.Signals(signum).name}; its MLflow run is "
              "marked KILLED", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    except Exception as exc:
        hint = advice(exc)
        if hint is not None:
            _fail(one_line(stage, exc, hint), FAILED_STATUS, exc)
        print(f"{one_line(stage, exc).replace(': ', ': unexpected ', 1)} (traceback below)",
              file=sys.stderr)
        traceback.print_exc()
        raise SystemExit(FAILED_STATUS) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(line: str, status: int, exc: BaseException) -> None:
    print(line, file=sys.stderr)
    if os.environ.get("SIMGAN_TRACEBACK") == "1":
        traceback.print_exception(exc)
    raise SystemExit(status) from None
