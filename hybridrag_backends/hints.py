"""Printed next steps (status warnings, validate fixes, error hints) that run when pasted.

The convention every hint follows, so a user can copy it and a test can find it:

* the command comes after ``run: `` and runs to the end of that line, complete (every option and
  value the tool knows is filled in);
* a value the tool cannot know is an UPPER_CASE placeholder, explained on the next line as
  ``  NAME: what to put there`` (:func:`run_hint`); in a one-line error message it is explained
  before ``run:`` instead.
"""

from __future__ import annotations

import shlex
from typing import Mapping, Optional, Sequence, Union

RUN = "run: "


def command_text(command: Union[str, Sequence[str]]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def run_hint(command: Union[str, Sequence[str]], placeholders: Optional[Mapping[str, str]] = None) -> str:
    """``run: <command>`` and one line per placeholder it holds (``  NAME: meaning``)."""
    text = RUN + command_text(command)
    return text + "".join(f"\n  {name}: {meaning}" for name, meaning in (placeholders or {}).items())
