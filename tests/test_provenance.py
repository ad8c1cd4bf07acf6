"""Provenance capture: git state, command, interpreter, packages and allow-listed env."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from _git import git
from strikes import _provenance
from strikes._provenance import (
    DEFAULT_ENV_ALLOW,
    Provenance,
    ProvenanceOptions,
    capture_provenance,
    freeze_packages,
    is_secret_env_name,
    redact_url,
)

pytestmark = pytest.mark.usefixtures("no_user_git")

GIT_ONLY = ProvenanceOptions(command=False, python=False, packages=False, env=False)
NOTHING = ProvenanceOptions(git=False, command=False, python=False, packages=False, env=False)


class TestGit:
    """Commit, branch, dirty flag, diff and remote of the working directory."""

    def test_clean_repository(self, repo: Path) -> None:
        """A clean checkout gives HEAD's hash, the branch, dirty False and no diff hash."""
        provenance, blobs = capture_provenance(GIT_ONLY, cwd=repo)
        assert provenance.git_commit == git(repo, "rev-parse", "HEAD").decode().strip()
        assert provenance.git_branch == "main"
        assert provenance.git_dirty is False
        assert provenance.git_diff_hash is None
        assert provenance.git_remote is None
        assert blobs == {}

    def test_dirty_repository_hashes_the_diff(self, repo: Path) -> None:
        """A modified tracked file makes it dirty with the sha256 of the diff, not the diff."""
        (repo / "train.py").write_text("print('v2')\n")
        provenance, blobs = capture_provenance(GIT_ONLY, cwd=repo)
        diff = git(repo, "diff", "HEAD", "--binary")
        assert provenance.git_dirty is True
        assert provenance.git_diff_hash == hashlib.sha256(diff).hexdigest()
        assert blobs == {}

    def test_git_diff_returns_the_diff_blob(self, repo: Path) -> None:
        """With git_diff=True the diff itself is returned, keyed by its hash."""
        (repo / "train.py").write_text("print('v2')\n")
        options = msgspec.structs.replace(GIT_ONLY, git_diff=True)
        provenance, blobs = capture_provenance(options, cwd=repo)
        assert provenance.git_diff_hash is not None
        diff = blobs[provenance.git_diff_hash]
        assert hashlib.sha256(diff).hexdigest() == provenance.git_diff_hash
        assert b"+print('v2')" in diff

    def test_staged_change_is_dirty(self, repo: Path) -> None:
        """A staged but uncommitted change counts as dirty and is in the diff."""
        (repo / "train.py").write_text("print('staged')\n")
        git(repo, "add", "train.py")
        options = msgspec.structs.replace(GIT_ONLY, git_diff=True)
        provenance, blobs = capture_provenance(options, cwd=repo)
        assert provenance.git_dirty is True
        assert provenance.git_diff_hash is not None
        assert b"+print('staged')" in blobs[provenance.git_diff_hash]

    def test_untracked_files_are_not_dirty(self, repo: Path) -> None:
        """New untracked files leave the tree clean: they are not part of any diff."""
        (repo / "notes.txt").write_text("scratch\n")
        provenance, _ = capture_provenance(GIT_ONLY, cwd=repo)
        assert provenance.git_dirty is False

    def test_detached_head_has_no_branch(self, repo: Path) -> None:
        """A detached HEAD still gives the commit, and no branch."""
        git(repo, "checkout", "-q", "--detach")
        provenance, _ = capture_provenance(GIT_ONLY, cwd=repo)
        assert provenance.git_commit is not None
        assert provenance.git_branch is None

    def test_repository_without_commits(self, tmp_path: Path) -> None:
        """A fresh repository has a branch but no commit."""
        if _provenance._git_executable() is None:
            pytest.skip("git is not installed")
        git(tmp_path, "init", "-q", "-b", "trunk")
        provenance, _ = capture_provenance(GIT_ONLY, cwd=tmp_path)
        assert provenance.git_commit is None
        assert provenance.git_branch == "trunk"

    def test_remote_credentials_are_stripped(self, repo: Path) -> None:
        """The origin URL is recorded without the user and token embedded in it."""
        git(repo, "remote", "add", "backup", "https://example.com/backup.git")
        git(repo, "remote", "add", "origin", "https://alice:ghp_s3cret@github.com/o/r.git")
        provenance, _ = capture_provenance(GIT_ONLY, cwd=repo)
        assert provenance.git_remote == "https://github.com/o/r.git"

    def test_first_remote_without_origin(self, repo: Path) -> None:
        """Without an origin, the first configured remote is recorded."""
        git(repo, "remote", "add", "upstream", "git@github.com:o/r.git")
        provenance, _ = capture_provenance(GIT_ONLY, cwd=repo)
        assert provenance.git_remote == "git@github.com:o/r.git"

    def test_outside_a_repository(self, tmp_path: Path) -> None:
        """Outside any repository every git field is None."""
        provenance, blobs = capture_provenance(GIT_ONLY, cwd=tmp_path)
        assert provenance == Provenance()
        assert blobs == {}

    def test_without_git(self, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a git executable the git fields stay None."""
        monkeypatch.setattr(_provenance, "_git_executable", lambda: None)
        provenance, _ = capture_provenance(GIT_ONLY, cwd=repo)
        assert provenance.git_commit is None

    def test_missing_directory(self, tmp_path: Path) -> None:
        """A working directory that does not exist gives None fields, not an error."""
        provenance, _ = capture_provenance(GIT_ONLY, cwd=tmp_path / "gone")
        assert provenance.git_commit is None

    def test_git_off(self, repo: Path) -> None:
        """git=False captures no git field even inside a repository."""
        provenance, _ = capture_provenance(NOTHING, cwd=repo)
        assert provenance == Provenance()


class TestRedactUrl:
    """Credentials never survive in a recorded URL."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("https://alice:pw@github.com/o/r.git", "https://github.com/o/r.git"),
            ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
            ("http://u:p@host:8080/x", "http://host:8080/x"),
            ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
            ("ssh://git:pw@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
            ("postgres://user:pw@db:5432/app", "postgres://user@db:5432/app"),
            ("https://h/x?access_token=abc&page=2", "https://h/x?access_token=***&page=2"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ],
    )
    def test_redact(self, url: str, expected: str) -> None:
        """Passwords, token-like http users and secret query values are removed."""
        assert redact_url(url) == expected


class TestEnv:
    """Environment variables are captured only by allow-list, never secrets."""

    def test_default_allow_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An allow-listed variable is captured; an unlisted one is not."""
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
        monkeypatch.setenv("SOME_UNLISTED_SETTING", "x")
        provenance, _ = capture_provenance(ProvenanceOptions(git=False, packages=False))
        assert provenance.env["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert "SOME_UNLISTED_SETTING" not in provenance.env

    def test_default_allow_list_has_no_secret_names(self) -> None:
        """Nothing in the default allow-list looks like a secret."""
        assert not [name for name in DEFAULT_ENV_ALLOW if is_secret_env_name(name)]

    @pytest.mark.parametrize(
        "name",
        [
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "DB_PASSWORD",
            "HF_AUTH",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SENTRY_DSN",
            "MYKEYFILE",
        ],
    )
    def test_secret_names_refused_even_when_allowed(
        self, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A secret-looking name is refused although the user allow-listed it."""
        monkeypatch.setenv(name, "hunter2")
        options = ProvenanceOptions(
            git=False, command=False, python=False, packages=False, env_allow=(name,)
        )
        provenance, _ = capture_provenance(options)
        assert provenance.env == {}

    def test_patterns_skip_secret_names(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A pattern captures what it matches except secret-looking names."""
        monkeypatch.setenv("MYAPP_MODE", "fast")
        monkeypatch.setenv("MYAPP_API_KEY", "sk-123")
        options = ProvenanceOptions(
            git=False, command=False, python=False, packages=False, env_allow=("MYAPP_*",)
        )
        provenance, _ = capture_provenance(options)
        assert provenance.env == {"MYAPP_MODE": "fast"}

    def test_url_credentials_stripped_from_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An allow-listed variable holding a URL loses the URL's password."""
        monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db/app")
        options = ProvenanceOptions(
            git=False, command=False, python=False, packages=False, env_allow=("DATABASE_URL",)
        )
        provenance, _ = capture_provenance(options)
        assert provenance.env == {"DATABASE_URL": "postgres://app@db/app"}

    def test_env_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """env=False captures no variable."""
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
        provenance, _ = capture_provenance(msgspec.structs.replace(NOTHING, env=False))
        assert provenance.env == {}


class TestCommand:
    """argv, entry point, working directory and pid."""

    def test_secret_option_values_masked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Values of secret-looking options are masked; other arguments are kept."""
        monkeypatch.setattr(
            sys,
            "argv",
            [
                "train.py",
                "--api-key",
                "sk-1",
                "--token=abc",
                "db.password=x",
                "--lr",
                "0.1",
                "--max-tokens",
                "100",
                "--data=https://u:p@host/x",
            ],
        )
        options = ProvenanceOptions(git=False, python=False, packages=False, env=False)
        provenance, _ = capture_provenance(options)
        assert provenance.command == [
            "train.py",
            "--api-key",
            "***",
            "--token=***",
            "db.password=***",
            "--lr",
            "0.1",
            "--max-tokens",
            "100",
            "--data=https://host/x",
        ]

    def test_command_fields(self, tmp_path: Path) -> None:
        """The working directory, the pid and an entry point are recorded."""
        options = ProvenanceOptions(git=False, python=False, packages=False, env=False)
        provenance, _ = capture_provenance(options, cwd=tmp_path)
        assert provenance.cwd == str(tmp_path)
        assert provenance.pid == os.getpid()
        assert provenance.command == sys.argv
        assert provenance.entry_point

    def test_module_entry_point(self, tmp_path: Path) -> None:
        """``python -m package`` records ``-m package``; a script records its path."""
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        program = (
            "from strikes._provenance import ProvenanceOptions, capture_provenance\n"
            "print(capture_provenance(ProvenanceOptions(git=False, packages=False))[0]"
            ".entry_point)\n"
        )
        (package / "__main__.py").write_text(program)
        (tmp_path / "script.py").write_text(program)
        as_module = subprocess.run(
            [sys.executable, "-m", "pkg"], cwd=tmp_path, check=True, capture_output=True
        )
        as_script = subprocess.run(
            [sys.executable, "script.py"], cwd=tmp_path, check=True, capture_output=True
        )
        assert as_module.stdout.decode().strip() == "-m pkg"
        assert as_script.stdout.decode().strip() == str((tmp_path / "script.py").resolve())


class TestPackages:
    """The frozen package list, stored once by hash."""

    def test_blob_hash_matches(self) -> None:
        """packages_hash is the sha256 of the blob: name==version lines sorted by name."""
        provenance, blobs = capture_provenance(msgspec.structs.replace(NOTHING, packages=True))
        assert provenance.packages_hash is not None
        frozen = blobs[provenance.packages_hash]
        assert hashlib.sha256(frozen).hexdigest() == provenance.packages_hash
        lines = frozen.decode().splitlines()
        names = [line.partition("==")[0] for line in lines]
        assert names == sorted(names)
        assert f"msgspec=={msgspec.__version__}" in lines
        assert all("==" in line for line in lines)

    def test_cached_per_process(self) -> None:
        """A second freeze returns the cached bytes without scanning again."""
        assert freeze_packages() is freeze_packages()

    def test_changed_sys_path_rescans(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A distribution added on a new sys.path entry appears in the next freeze."""
        info = tmp_path / "fake_pkg-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Fake_Pkg\nVersion: 1.2.3\n")
        freeze_packages()
        monkeypatch.syspath_prepend(str(tmp_path))
        assert "fake-pkg==1.2.3" in freeze_packages().decode().splitlines()

    def test_same_list_as_importlib_metadata(self) -> None:
        """Read from directory names, the list equals what importlib.metadata reports."""
        expected: dict[str, str] = {}
        for distribution in importlib.metadata.distributions():
            name = re.sub(r"[-_.]+", "-", distribution.metadata["Name"]).lower()
            expected.setdefault(name, distribution.version)
        frozen = freeze_packages().decode().splitlines()
        assert frozen == [f"{name}=={expected[name]}" for name in sorted(expected)]

    def test_egg_info_and_odd_names_are_read_from_metadata(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Names a directory listing cannot parse fall back to the distribution's metadata."""
        egg = tmp_path / "Legacy_Thing.egg-info"
        egg.mkdir()
        (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: Legacy.Thing\nVersion: 0.9\n")
        odd = tmp_path / "odd-name-pkg-2.0.dist-info"  # unescaped dashes: ambiguous
        odd.mkdir()
        (odd / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-name-pkg\nVersion: 2.0\n")
        broken = tmp_path / "broken.dist-info"  # no version, no METADATA: left out
        broken.mkdir()
        monkeypatch.syspath_prepend(str(tmp_path))
        lines = freeze_packages().decode().splitlines()
        assert "legacy-thing==0.9" in lines
        assert "odd-name-pkg==2.0" in lines
        assert not [line for line in lines if line.startswith("broken")]


class TestRecord:
    """The record as a whole."""

    def test_everything_off_is_empty(self) -> None:
        """With every part off the record is empty and encodes to ``{}``."""
        provenance, blobs = capture_provenance(NOTHING)
        assert provenance == Provenance()
        assert msgspec.json.encode(provenance) == b"{}"
        assert blobs == {}

    def test_default_capture_round_trips(self, repo: Path) -> None:
        """A full capture has interpreter fields and survives a JSON round trip."""
        provenance, _ = capture_provenance(ProvenanceOptions(), cwd=repo)
        assert provenance.python_version == ".".join(map(str, sys.version_info[:3]))
        assert provenance.python_implementation
        assert provenance.platform
        assert provenance.hostname
        assert provenance.git_commit is not None
        decoded = msgspec.json.decode(msgspec.json.encode(provenance), type=Provenance)
        assert decoded == provenance

    def test_failing_part_leaves_its_fields_none(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A part that raises loses only its own fields; capture does not raise."""

        def broken() -> bytes:
            raise OSError("unreadable site-packages")

        monkeypatch.setattr(_provenance, "freeze_packages", broken)
        provenance, blobs = capture_provenance(ProvenanceOptions(git=False))
        assert provenance.packages_hash is None
        assert blobs == {}
        assert provenance.python_version is not None
