"""A warning for files that hold keys in clear text written inside a git work tree.

A device list, a decrypted device list, a transport key file, a simulated
device's memory or the server's master key, written in a project's directory,
is one `git add .` away from being published.  The commands that write one call
`warn_if_in_git_work_tree` after writing it: one line on stderr with the file
name and why.  Whether a directory is in a work tree is found by walking up to
the first directory with a `.git` entry (a directory, or the file of a linked
work tree or submodule); git itself is not run, so it need not be installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


def git_work_tree(path: Path) -> Path | None:
    """The top of the git work tree that holds `path` (which need not exist yet), or None."""
    start = Path(path).expanduser().absolute()
    for directory in (start, *start.parents):
        try:
            if (directory / ".git").exists():
                return directory
        except OSError:  # a directory we may not look into: not ours to judge
            return None
    return None


def warn_if_in_git_work_tree(path: Path, what: str, stream: TextIO | None = None) -> bool:
    """Warn on stderr, in one line, when `path` (holding `what` in clear text) is in a work tree.

    `what` says what the file holds, e.g. "device keys".  True when it warned.
    """
    top = git_work_tree(path)
    if top is None:
        return False
    print(
        f"warning: {path} holds {what} in clear text and is inside the git work tree {top}: "
        "keep it out of version control, or write it outside the repository",
        file=stream if stream is not None else sys.stderr,
        flush=True,
    )
    return True
