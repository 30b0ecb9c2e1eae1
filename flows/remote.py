"""Push DVC outputs to a remote after ``make run``, so older commits' metrics and plots stay
reachable (``dvc metrics diff <commit>``, ``dvc plots diff``) from any clone.

Without a default remote in ``.dvc/config``, a local one outside the work tree is set in
``.dvc/config.local`` (not committed): ``../simgan-dvc-remote`` or ``$SIMGAN_DVC_REMOTE``
(``make run DVC_REMOTE=/path``). A team remote (S3, SSH: docs/operations.md) in
``.dvc/config`` wins. A push that fails prints one line saying what to do and does not fail
the run: the results are already in the workspace and the local cache.

    python -m flows.remote push [--default PATH]      # DVC_REMOTE=none: skip
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["LOCAL_REMOTE_NAME", "RemoteError", "default_remote", "ensure_remote", "push"]

LOCAL_REMOTE_NAME = "simgan-local"
ENV_REMOTE = "SIMGAN_DVC_REMOTE"


class RemoteError(RuntimeError):
    """The remote is missing or unwritable; the message is one line saying what to do."""


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)


def default_remote(root: Path) -> str | None:
    """The name of the project's default DVC remote (any config level), or None."""
    result = _dvc(root, "remote", "default")
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else None


def ensure_remote(root: Path, path: str | None = None) -> str:
    """The default remote's name; sets the local one (config.local) when there is none."""
    name = default_remote(root)
    if name:
        return name
    target = Path(path or os.environ.get(ENV_REMOTE) or root.parent / "simgan-dvc-remote")
    target = target.expanduser().resolve()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RemoteError(
            f"cannot create the DVC remote {target} ({exc.strerror}): set DVC_REMOTE=<writable "
            "dir> or add a team remote (dvc remote add -d ..., docs/operations.md)"
        ) from None
    result = _dvc(root, "remote", "add", "--local", "-f", "-d", LOCAL_REMOTE_NAME, str(target))
    if result.returncode != 0:
        raise RemoteError(f"dvc remote add failed: {_last_line(result.stderr)}")
    return LOCAL_REMOTE_NAME


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def push(root: Path, path: str | None = None) -> str:
    """``dvc push`` to the default remote; returns its name; RemoteError on failure."""
    name = ensure_remote(root, path)
    result = _dvc(root, "push", "--remote", name)
    if result.returncode != 0:
        raise RemoteError(
            f"dvc push to remote {name!r} failed ({_last_line(result.stderr)}): check that "
            "it is reachable and writable (dvc remote list), then run `dvc push`"
        )
    return name


def main(argv: list[str] | None = None) -> int:
    """CLI: push, or print one line and exit 0 (the run itself succeeded)."""
    parser = argparse.ArgumentParser(prog="python -m flows.remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["push"])
    parser.add_argument("--default", default=None, metavar="PATH",
                        help=f"the local remote when none is configured (${ENV_REMOTE})")
    parser.add_argument("--root", default=".", help="DVC project root")
    args = parser.parse_args(argv)
    if (args.default or "").lower() == "none":
        print("dvc push skipped (DVC_REMOTE=none)")
        return 0
    try:
        name = push(Path(args.root).resolve(), args.default)
    except RemoteError as exc:
        print(f"WARNING: {exc}", file=sys.stderr)
        return 0
    print(f"Pushed DVC outputs to remote {name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
