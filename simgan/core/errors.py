"""Errors a user can fix, whose message is one line saying what is wrong and what to do.

Stages print them without a traceback (stages/failures.py). The older ones keep their own
classes (ParamsError, IngestError, NoLabelsError, StoreError); new ones derive from
:class:`UserError`.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure of the inputs or the machine, not of the code; the message says the fix."""


class DeviceError(UserError, ValueError):
    """The params ask for a torch device this machine does not have."""
