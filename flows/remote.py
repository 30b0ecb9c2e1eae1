"""Push DVC outputs to a remote after ``make run``, so older commits' metrics and plots stay
reachable (``dvc metrics diff <commit>``, ``dvc plots diff``) from any clone.

Without a default remote in ``.dvc/config``, one is set in ``.dvc/config.local`` (not
committed): ``../simgan-dvc-remote`` or ``$SIMGAN_DVC_REMOTE`` (``make run DVC_REMOTE=/path``),
a directory outside the work tree, or a URL (``DVC_REMOTE=s3://bucket/simgan``; an
S3-compatible store's endpoint from ``AWS_ENDPOINT_URL_S3``, credentials as for any AWS client;
docs/scale.md). A team remote (S3, SSH: docs/operations.md) in ``.dvc/config`` wins. A push
that fails prints one line naming the remote's URL and saying what to do, and does not fail the
run: the results are already in the workspace and the local cache. An S3 endpoint that does
not accept connections is found by a 5-second probe before ``dvc push`` starts.

    python -m flows.remote push [--default PATH]      # DVC_REMOTE=none: skip
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["LOCAL_REMOTE_NAME", "RemoteError", "default_remote", "ensure_remote", "push"]

LOCAL_REMOTE_NAME = "simgan-local"
ENV_REMOTE = "SIMGAN_DVC_REMOTE"
#: what botocore (so DVC's S3 remotes) read when the remote sets no ``endpointurl``
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
PROBE_TIMEOUT_S = 5.0


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
    given = path or os.environ.get(ENV_REMOTE) or str(root.parent / "simgan-dvc-remote")
    target = given if _is_url(given) else str(_local_dir(Path(given)))
    result = _dvc(root, "remote", "add", "--local", "-f", "-d", LOCAL_REMOTE_NAME, target)
    if result.returncode != 0:
        raise RemoteError(f"dvc remote add failed: {_last_line(result.stderr)}")
    return LOCAL_REMOTE_NAME


def _is_url(target: str) -> bool:
    """``s3://bucket/x``, ``ssh://host/x`` ... (a Windows drive ``C:\\x`` is not one)."""
    return len(urlparse(target).scheme) > 1 and "://" in target


def _local_dir(target: Path) -> Path:
    target = target.expanduser().resolve()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RemoteError(
            f"cannot create the DVC remote {target} ({exc.strerror}): set DVC_REMOTE=<writable "
            "dir> or add a team remote (dvc remote add -d ..., docs/operations.md)"
        ) from None
    return target


def _config(root: Path, key: str) -> str | None:
    result = _dvc(root, "config", key)
    value = result.stdout.strip()
    return value if result.returncode == 0 and value else None


def describe(root: Path, name: str) -> tuple[str, str | None]:
    """The remote's URL and, for S3, the endpoint it talks to (None: AWS's own)."""
    url = _config(root, f"remote.{name}.url") or "(no url)"
    endpoint = None
    if url.startswith("s3://"):
        endpoint = _config(root, f"remote.{name}.endpointurl") or next(
            (os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), None)
    return url, endpoint


def probe(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a TCP connection to ``endpoint`` (http[s]://host[:port]) fails, None if it opens.
    DVC itself would retry an unreachable endpoint for seconds to minutes before saying so."""
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def push(root: Path, path: str | None = None) -> str:
    """``dvc push`` to the default remote; returns its name; RemoteError on failure."""
    name = ensure_remote(root, path)
    url, endpoint = describe(root, name)
    where = f"{url} at {endpoint}" if endpoint else url
    if endpoint and (why := probe(endpoint)):
        raise RemoteError(
            f"dvc push to remote {name!r} ({url}) not started: its S3 endpoint {endpoint} is "
            f"unreachable ({why}); start it or fix the endpoint (dvc remote modify {name} "
            "endpointurl ..., or AWS_ENDPOINT_URL_S3), then run `dvc push`")
    result = _dvc(root, "push", "--remote", name)
    if result.returncode != 0:
        raise RemoteError(
            f"dvc push to remote {name!r} ({where}) failed ({_last_line(result.stderr)}): "
            "check that it is reachable and writable (dvc remote list), then run `dvc push`"
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
