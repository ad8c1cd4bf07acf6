"""Provenance: what code, command, interpreter, packages and environment produced a run.

:func:`capture_provenance` is called once at run start. It returns a small
:class:`Provenance` record to store on the run, and the large pieces (the frozen package
list, the git diff when asked) as blobs keyed by their sha256, so that the store keeps
each once as an object and thousands of runs share it.

Capture never raises: every part is guarded, and a part that fails (no git, not a
repository, a timeout, an odd interpreter) leaves its fields ``None``.

Secrets are kept out on purpose: environment variables are read only by allow-list and
a secret-looking name is refused even when allow-listed; credentials are stripped from
URLs (the git remote, argv, environment values); the values of secret-looking
command-line options (``--api-key X``, ``--token=X``, ``db.password=X``) are masked.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

from strikes._secrets import MASK, is_secret_name
from strikes.events import Provenance

__all__ = [
    "DEFAULT_ENV_ALLOW",
    "Provenance",
    "ProvenanceOptions",
    "capture_provenance",
    "freeze_packages",
    "is_secret_env_name",
    "redact_url",
]

DEFAULT_ENV_ALLOW: tuple[str, ...] = (
    # Which accelerators the run saw, and how libraries were told to use them.
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    # Reproducibility of Python itself.
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    # Which environment the interpreter came from.
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    # Where the run ran: host and batch-scheduler job.
    "HOSTNAME",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_JOB_NODELIST",
    "PBS_JOBID",
    "LSB_JOBID",
    # Distributed training topology.
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
)
"""Environment variables captured by default: harmless, and useful to explain a run."""

_SECRET_ENV_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|DSN",
    re.IGNORECASE,
)
# The schemes whose user name is often a token (https://<token>@github.com/...).
_TOKEN_USER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")
_T = TypeVar("_T")
_GIT_TIMEOUT = 2.0
_DIFF_TIMEOUT = 10.0


class ProvenanceOptions(msgspec.Struct, frozen=True):
    """Which parts of provenance to capture; every part is on except the git diff itself."""

    git: bool = True
    """The git commit, branch, dirty flag, diff hash and remote of the working directory."""
    git_diff: bool = False
    """Also return the diff against HEAD as a blob (its hash is captured whenever dirty)."""
    command: bool = True
    """argv, the entry point, the working directory and the pid."""
    python: bool = True
    """The Python version and implementation, the platform and the hostname."""
    packages: bool = True
    """The frozen list of installed distributions, as a blob and its hash."""
    env: bool = True
    """The environment variables named by ``env_allow`` (never secret-looking ones)."""
    env_allow: tuple[str, ...] = DEFAULT_ENV_ALLOW
    """Names (or ``fnmatch`` patterns such as ``SLURM_*``) of variables to capture."""


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable's name looks like it holds a secret."""
    # A substring test on purpose: env names are capitalised run-togethers (GHTOKEN,
    # AWS_SESSION_TOKEN), and refusing a harmless one costs nothing in an allow-list.
    return _SECRET_ENV_NAME.search(name) is not None or is_secret_name(name)


def redact_url(url: str) -> str:
    """``url`` without its password, token-like user name, or secret query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        keep_user = parts.scheme.lower() not in _TOKEN_USER_SCHEMES and user
        netloc = f"{user}@{host}" if keep_user else host
    query = _QUERY_PARAM.sub(_mask_query_param, "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_query_param(match: re.Match[str]) -> str:
    separator, name, _value = match.groups()
    return f"{separator}{name}={MASK}" if is_secret_name(name) else match.group(0)


def _redact_text(text: str) -> str:
    # Cheap test first: almost no argument or variable holds a URL.
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


# -- packages ----------------------------------------------------------------------------

_packages_lock = threading.Lock()
_packages_cache: tuple[tuple[str, ...], bytes] | None = None
_NORMALIZE = re.compile(r"[-_.]+")
_fork_hook_installed = False


def _after_fork_in_child() -> None:
    # A capture thread of the parent may have held a lock at the fork: the child's
    # copy would stay locked for ever.
    global _packages_lock, _git_lock  # noqa: PLW0603
    _packages_lock = threading.Lock()
    _git_lock = threading.Lock()


def _install_fork_hook() -> None:
    # On first capture, not at import: `import strikes` registers nothing.
    global _fork_hook_installed  # noqa: PLW0603
    if not _fork_hook_installed:
        _fork_hook_installed = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


def freeze_packages() -> bytes:
    """The installed distributions as ``name==version`` lines sorted by name, cached per process.

    The cache is keyed on ``sys.path``, so a changed path is scanned again; a package
    installed into an unchanged path during the process is not seen.
    """
    global _packages_cache  # noqa: PLW0603 - one process-wide cache is the point
    key = tuple(sys.path)
    with _packages_lock:
        if _packages_cache is not None and _packages_cache[0] == key:
            return _packages_cache[1]
        seen: dict[str, str] = {}
        for entry in key:
            for name, version in _installed_in(entry):
                seen.setdefault(name, version)  # the first on sys.path wins, as for imports
        frozen = "".join(f"{name}=={seen[name]}\n" for name in sorted(seen)).encode()
        _packages_cache = (key, frozen)
        return frozen


_DIST_INFO = re.compile(r"([A-Za-z0-9_.]+?)-(\d[^-]*)\.dist-info")


def _installed_in(entry: str) -> list[tuple[str, str]]:
    """``(name, version)`` of the distributions installed in one ``sys.path`` entry.

    A wheel's ``<name>-<version>.dist-info`` directory names both (name escaped with
    ``_``), so most are read from a directory listing: the first capture runs on a
    thread beside the user's, and parsing every METADATA file (importlib.metadata's
    way, ~0.7 ms each) held the GIL long enough to slow logging in the first run. Names
    that do not parse (egg-info, odd legacy names) are read from their metadata.
    """
    try:
        names = os.listdir(entry or ".")  # noqa: PTH208 - hundreds of names, no Path each
    except OSError:  # a zip, a missing directory: importlib.metadata knows those
        return [
            named
            for distribution in importlib.metadata.distributions(path=[entry])
            if (named := _name_version(distribution)) is not None
        ]
    found: list[tuple[str, str]] = []
    for name in sorted(names):
        if not name.endswith((".dist-info", ".egg-info")):
            continue
        match = _DIST_INFO.fullmatch(name)
        if match is not None:
            found.append((_NORMALIZE.sub("-", match[1]).lower(), match[2]))
            continue
        distribution = importlib.metadata.PathDistribution(Path(entry) / name)
        named = _name_version(distribution)
        if named is not None:
            found.append(named)
    return found


def _name_version(distribution: importlib.metadata.Distribution) -> tuple[str, str] | None:
    # A broken METADATA file must cost its own line, not the whole list.
    try:
        name = distribution.metadata["Name"]
        version = distribution.version
    except Exception:
        return None
    if not isinstance(name, str) or not name or not isinstance(version, str):
        return None
    return _NORMALIZE.sub("-", name).lower(), version  # PEP 503 normalised names


# -- git ---------------------------------------------------------------------------------


@functools.cache
def _git_executable() -> str | None:
    return shutil.which("git")


def _git_env() -> dict[str, str]:
    environ = dict(os.environ)
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take index.lock and race the user's git.
    environ.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return environ


def _git_start(git: str, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
        [git, "--no-pager", *args],
        cwd=cwd,
        env=_git_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def _git_finish(process: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None
    return stdout if process.returncode == 0 else None


def _parse_status(output: bytes) -> tuple[str | None, str | None, bool]:
    commit = branch = None
    dirty = False
    for line in output.decode(errors="replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ")
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ")
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return commit, branch, dirty


def _parse_remote(output: bytes) -> str | None:
    remotes: dict[str, str] = {}
    for line in output.decode(errors="replace").splitlines():
        key, _, url = line.partition(" ")
        name = key.removeprefix("remote.").removesuffix(".url")
        remotes.setdefault(name, url)
    chosen = remotes.get("origin") or next(iter(remotes.values()), None)
    return redact_url(chosen) if chosen else None


class _GitInfo(NamedTuple):
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff_hash: str | None = None
    remote: str | None = None


def _capture_git(cwd: Path, diff_blobs: dict[str, bytes] | None) -> _GitInfo:
    """Git facts about ``cwd``; the diff goes into ``diff_blobs`` when given."""
    git = _git_executable()
    if git is None:
        return _GitInfo()
    # Both started before either is awaited: two git processes in parallel halve the wait.
    status = _git_start(
        git, cwd, "status", "--porcelain=v2", "--branch", "--untracked-files=no", "--no-renames"
    )
    remote = _git_start(git, cwd, "config", "--get-regexp", r"^remote\..*\.url$")
    status_output = _git_finish(status, _GIT_TIMEOUT)
    remote_output = _git_finish(remote, _GIT_TIMEOUT)
    if status_output is None:
        return _GitInfo()  # not a repository, or git failed: every git field stays None
    commit, branch, dirty = _parse_status(status_output)
    remote_url = None if remote_output is None else _parse_remote(remote_output)
    diff_hash = None
    if dirty and commit is not None:
        diff = _git_finish(
            _git_start(git, cwd, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff"),
            _DIFF_TIMEOUT,
        )
        if diff is not None:
            diff_hash = hashlib.sha256(diff).hexdigest()
            if diff_blobs is not None:
                diff_blobs[diff_hash] = diff
    return _GitInfo(commit, branch, dirty, diff_hash, remote_url)


# -- command, interpreter, environment ---------------------------------------------------


def _mask_argv(argv: list[str]) -> list[str]:
    masked: list[str] = []
    mask_next = False
    for argument in argv:
        if mask_next and not argument.startswith("-"):
            masked.append(MASK)
            mask_next = False
            continue
        mask_next = False
        name, equals, _value = argument.partition("=")
        if equals and is_secret_name(name.lstrip("-")):
            masked.append(f"{name}={MASK}")  # --token=X, and overrides like db.password=X
        else:
            # A bare secret-looking option takes the next argument as its value.
            mask_next = argument.startswith("--") and is_secret_name(argument)
            masked.append(_redact_text(argument))
    return masked


def _entry_point() -> str | None:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    module_name = getattr(spec, "name", None)
    if isinstance(module_name, str) and module_name:
        return "-m " + module_name.removesuffix(".__main__")
    script = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else None)
    if not isinstance(script, str) or not script or script in {"-c", "-"}:
        return None  # an interactive session or `python -c`
    return str(Path(script).resolve())


@functools.cache
def _interpreter() -> tuple[str, str, str]:
    # platform.platform() reads files and may run `uname`: once per process is enough.
    return platform.python_version(), platform.python_implementation(), platform.platform()


def _capture_env(allow: tuple[str, ...]) -> dict[str, str]:
    patterns = [name for name in allow if not is_secret_env_name(name)]
    literal = {name for name in patterns if not any(char in name for char in "*?[")}
    wildcards = [name for name in patterns if name not in literal]
    captured: dict[str, str] = {}
    for name in literal:
        value = os.environ.get(name)
        if value is not None:
            captured[name] = _redact_text(value)
    if wildcards:
        for name, value in os.environ.items():
            # A pattern may match a secret (SLURM_* matches no secret, MY_* might).
            if name in captured or is_secret_env_name(name):
                continue
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in wildcards):
                captured[name] = _redact_text(value)
    return dict(sorted(captured.items()))


def _try(function: Callable[[], _T]) -> _T | None:
    # A part that fails leaves its fields None: provenance must never stop a run.
    try:
        return function()
    except Exception:
        return None


GIT_REUSE_SECONDS = 10.0
"""Runs of one process starting this close together share one look at git."""

_git_lock = threading.Lock()
_git_cache: dict[tuple[Path, bool], tuple[float, _GitInfo, dict[str, bytes]]] = {}


def _recent_git(directory: Path, *, want_diff: bool) -> tuple[_GitInfo, dict[str, bytes]]:
    """Git state of ``directory``, reused when taken less than GIT_REUSE_SECONDS ago.

    Git is the only costly part of a warm capture (a few subprocesses, ~6-9 ms): a sweep
    of 100 runs started under ``asyncio.gather`` asks it once, not 100 times. Captures
    wait for one another here, so runs starting together share the first one's answer.
    """
    key = (directory, want_diff)
    with _git_lock:
        hit = _git_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < GIT_REUSE_SECONDS:
            return hit[1], hit[2]
        diff_blobs: dict[str, bytes] = {}
        info = _try(lambda: _capture_git(directory, diff_blobs if want_diff else None))
        if info is None:
            info = _GitInfo()
        _git_cache[key] = (time.monotonic(), info, diff_blobs)
        return info, diff_blobs


def capture_provenance(
    options: ProvenanceOptions, cwd: Path | None = None
) -> tuple[Provenance, dict[str, bytes]]:
    """Capture provenance, returning the record and the blobs to store keyed by sha256 hex.

    ``cwd`` is the directory whose repository is inspected and that is recorded as the
    working directory; it defaults to the process's. Never raises.
    """
    _install_fork_hook()
    blobs: dict[str, bytes] = {}
    directory = cwd if cwd is not None else _try(Path.cwd)
    git = _GitInfo()
    if options.git and directory is not None:
        git, diff_blobs = _recent_git(directory, want_diff=options.git_diff)
        blobs.update(diff_blobs)
    command = entry_point = working_directory = pid = None
    if options.command:
        command = _try(lambda: _mask_argv(list(sys.argv)))
        entry_point = _try(_entry_point)
        working_directory = None if directory is None else str(directory)
        pid = _try(os.getpid)
    interpreter = hostname = None
    if options.python:
        interpreter = _try(_interpreter)
        hostname = _try(socket.gethostname)
    packages_hash = None
    if options.packages:
        frozen = _try(freeze_packages)
        if frozen is not None:
            packages_hash = hashlib.sha256(frozen).hexdigest()
            blobs[packages_hash] = frozen
    env = (_try(lambda: _capture_env(tuple(options.env_allow))) if options.env else None) or {}
    version, implementation, platform_name = interpreter or (None, None, None)
    return Provenance(
        git_commit=git.commit,
        git_branch=git.branch,
        git_dirty=git.dirty,
        git_diff_hash=git.diff_hash,
        git_remote=git.remote,
        command=command,
        entry_point=entry_point,
        cwd=working_directory,
        python_version=version,
        python_implementation=implementation,
        platform=platform_name,
        hostname=hostname,
        pid=pid,
        packages_hash=packages_hash,
        env=env,
    ), blobs
