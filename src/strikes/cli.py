"""The ``strikes`` command line: list, show, compare, export, tail and clean up runs; start the UI.

Exit codes: 0 success, 1 an error (no such run, a missing extra, a failed write),
2 a usage error (bad arguments). ``--json`` prints machine-readable output on stdout;
errors always go to stderr as ``strikes: error: ...``. Tables use ``rich`` when it is
installed (``strikes[cli]``) and plain aligned text otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TextIO

import msgspec

from strikes.events import Event, Metric, Provenance
from strikes.store.export import write_csv_stream, write_table
from strikes.store.query import TimeBound
from strikes.store.reader import EventTail, RunRecord, Store, TaskRecord, open_store

__all__ = ["main"]

try:  # rich is optional: `strikes[cli]`
    import rich.console
    import rich.progress
    import rich.table
    import rich.text
    import rich.tree

    _rich: Any = rich
except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
    _rich = None

_json = msgspec.json.Encoder(enc_hook=repr)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
TABLE_LIMIT = 100
"""Runs shown by ``strikes runs`` in a table unless ``--limit`` says otherwise."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CliError(Exception):
    """A failure to report on stderr with exit code 1."""


class _UsageError(Exception):
    """Bad arguments found after parsing: exit code 2."""


# -- output ---------------------------------------------------------------------------


class Output:
    """Where results go: rich tables for people, plain text without rich, JSON for scripts."""

    def __init__(self, stream: TextIO, *, json_mode: bool, use_rich: bool) -> None:
        self.stream = stream
        self.json_mode = json_mode
        self.console = (
            _rich.console.Console(
                file=stream,
                highlight=False,
                # A pipe or file gets whole lines, not rows cut at rich's default 80 columns.
                width=None if stream.isatty() else 200,
            )
            if use_rich and _rich is not None and not json_mode
            else None
        )

    def line(self, text: str = "") -> None:
        """Print a line of text (markup-free)."""
        if self.console is not None:
            self.console.print(text, markup=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")

    def json(self, value: Any) -> None:
        """Print ``value`` as one JSON document."""
        self.stream.write(_json.encode(_plain(value)).decode() + "\n")

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> None:
        """Print a table with a header row."""
        cells = [[_text(cell) for cell in row] for row in rows]
        if self.console is not None:
            table = _rich.table.Table(title=title or None, title_justify="left")
            for column in columns:
                table.add_column(column, overflow="fold")
            for row in cells:
                table.add_row(*(_rich.text.Text(cell) for cell in row))
            self.console.print(table)
            return
        if title:
            self.line(title)
        widths = [len(column) for column in columns]
        for row in cells:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
        self.line("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        self.line("  ".join("-" * w for w in widths))
        for row in cells:
            self.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    def tree(self, label: str, tasks: list[TaskRecord]) -> None:
        """Print a task tree with status and duration."""
        if self.console is not None:
            tree = _rich.tree.Tree(_rich.text.Text(label))
            self._rich_branch(tree, tasks)
            self.console.print(tree)
            return
        self.line(label)
        self._plain_branch(tasks, "")

    def _rich_branch(self, node: Any, tasks: list[TaskRecord]) -> None:
        for task in tasks:
            self._rich_branch(node.add(_rich.text.Text(_task_line(task))), task.tasks)

    def _plain_branch(self, tasks: list[TaskRecord], prefix: str) -> None:
        for index, task in enumerate(tasks):
            last = index == len(tasks) - 1
            self.line(f"{prefix}{'└── ' if last else '├── '}{_task_line(task)}")
            self._plain_branch(task.tasks, prefix + ("    " if last else "│   "))


def _plain(value: Any) -> Any:
    """JSON-ready builtins: datetimes as ISO text, NaN and infinities as ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return value
    return _json.encode(_plain(value)).decode()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"


def _task_line(task: TaskRecord) -> str:
    mark = {"finished": "ok", "failed": "FAILED", "running": "running"}[task.status]
    parts = [task.name, f"[{mark}]", _duration(task.duration)]
    if task.metrics:
        parts.append(" ".join(f"{k}={_text(v[-1].value)}" for k, v in task.metrics.items() if v))
    if task.error:
        parts.append(f"- {task.error}")
    return " ".join(part for part in parts if part)


# -- parsing helpers ------------------------------------------------------------------


def parse_time(text: str) -> TimeBound:
    """``30m``, ``2h``, ``1d 6h`` (that long ago) or an ISO 8601 time (UTC if no zone)."""
    pieces = _DURATION.findall(text)
    if pieces and _DURATION.sub("", text).strip() == "":
        return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in pieces))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"not a time: {text!r} (use e.g. 2h, 3d or 2025-01-31T12:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_param(text: str) -> tuple[str, Any]:
    """``name=value``; the value is read as JSON when it parses (``0.1``, ``true``), else text."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise _UsageError(f"--param wants NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if args.project:
        filters["project"] = args.project
    if args.tag:
        filters["tags"] = args.tag
    if args.status:
        # A crashed run's stored status is running: select those, keep the crashed after.
        filters["status"] = sorted({"running" if s == "crashed" else s for s in args.status})
    if args.name:
        filters["name"] = args.name
    if args.param:
        filters["params"] = dict(parse_param(text) for text in args.param)
    if args.since:
        filters["since"] = parse_time(args.since)
    if args.until:
        filters["until"] = parse_time(args.until)
    return filters


def _only_crashed(args: argparse.Namespace, records: list[RunRecord]) -> list[RunRecord]:
    """Apply ``--status crashed`` (without ``--status running``) to the selected runs."""
    wanted = set(args.status or ())
    if "crashed" not in wanted or "running" in wanted:
        return records
    return [record for record in records if record.status != "running" or record.crashed]


def _resolve(store: Store, ref: str) -> RunRecord:
    try:
        return store.resolve(ref)
    except KeyError as exc:
        raise CliError(exc.args[0] if exc.args else str(exc)) from None
    except LookupError as exc:
        raise CliError(str(exc)) from None


# -- commands -------------------------------------------------------------------------


def _status(record: RunRecord) -> str:
    """The status for people: ``crashed`` for a running run whose owner went silent."""
    return "crashed" if record.crashed else record.status


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return _duration(max(0.0, time.time() - moment.timestamp())) + " ago"


def _provenance_json(provenance: Provenance | None) -> dict[str, Any] | None:
    return None if provenance is None else msgspec.structs.asdict(provenance)


def _summary(record: RunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "project": record.project,
        "status": record.status,
        "crashed": record.crashed,
        "last_seen": record.last_seen,
        "tags": record.tags,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration": record.duration,
        "error": record.error,
        "params": record.params,
        "metrics": {
            name: msgspec.structs.asdict(summary)
            for name, summary in record.manifest.metrics.items()
        },
    }


def cmd_runs(store: Store, args: argparse.Namespace, out: Output) -> int:
    """List runs, newest first."""
    records = _only_crashed(args, store.runs(**_filters(args)))
    # A person gets a screenful by default (rich takes seconds on 10,000 rows); scripts
    # get everything.
    limit = args.limit if args.limit is not None else (0 if out.json_mode else TABLE_LIMIT)
    hidden = max(0, len(records) - limit) if limit else 0
    if limit:
        records = records[:limit]
    if out.json_mode:
        out.json([_summary(record) for record in records])
        return 0
    if not records:
        out.line(f"no runs in {store.path}" + (" match" if _filters(args) else ""))
        return 0
    shown = store.short_ids()
    rows = [
        (
            shown.get(record.id, record.id),
            record.name,
            record.project,
            _status(record),
            record.started_at,
            _duration(record.duration),
            ",".join(record.tags),
            " ".join(
                f"{name}={_text(summary.last)}"
                for name, summary in list(record.manifest.metrics.items())[:3]
            ),
        )
        for record in records
    ]
    out.table(["id", "name", "project", "status", "started", "duration", "tags", "metrics"], rows)
    if hidden:
        out.line(f"... and {hidden} older run(s); --limit 0 shows all")
    return 0


def _metric_stats(points: list[Any]) -> dict[str, Any]:
    values = [p.value for p in points if p.value == p.value]
    return {
        "count": len(points),
        "last": points[-1].value if points else None,
        "last_step": points[-1].step if points else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def _task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "label": task.label,
        "status": task.status,
        "error": task.error,
        "started_at": task.started_at,
        "duration": task.duration,
        "params": task.params,
        "inputs": task.inputs,
        "outputs": task.outputs,
        "metrics": {name: points[-1].value for name, points in task.metrics.items() if points},
        "tasks": [_task_json(child) for child in task.tasks],
    }


def cmd_show(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Print one run: identity, params, metric summaries and the task tree."""
    record = _resolve(store, args.run)
    metrics = {name: _metric_stats(points) for name, points in record.metrics.items()}
    if out.json_mode:
        data = _summary(record)
        data["metrics"] = metrics
        data["tasks"] = [_task_json(task) for task in record.tasks]
        data["errors"] = [
            {"type": e.type, "message": e.message, "span_id": e.span_id} for e in record.errors
        ]
        data["provenance"] = _provenance_json(record.provenance)
        packages = record.packages
        data["packages"] = None if packages is None else len(packages)
        out.json(data)
        return 0
    out.line(f"{record.name}  ({record.id})")
    out.line(f"  project  {record.project}")
    out.line(f"  status   {_status_line(record)}")
    out.line(
        f"  started  {_text(record.started_at)}   duration {_duration(record.duration) or '-'}"
    )
    if record.tags:
        out.line(f"  tags     {', '.join(record.tags)}")
    if record.provenance is not None:
        out.line()
        out.line("Provenance")
        for label, value in _provenance_lines(record):
            out.line(f"  {label:<9} {value}")
    if record.params:
        out.line()
        out.table(["param", "value"], sorted(record.params.items()), title="Params")
    if metrics:
        out.line()
        out.table(
            ["metric", "count", "last", "step", "min", "max"],
            [
                (name, m["count"], m["last"], m["last_step"], m["min"], m["max"])
                for name, m in sorted(metrics.items())
            ],
            title="Metrics",
        )
    if record.tasks:
        out.line()
        out.tree(f"Tasks ({len(record.all_tasks)})", record.tasks)
    if record.traceback:
        out.line()
        out.line(record.traceback.rstrip())
    return 0


def _status_line(record: RunRecord) -> str:
    if record.status != "running":
        return record.status + (f"  - {record.error}" if record.error else "")
    seen = _ago(record.last_seen)
    if record.crashed:
        manifest = record.manifest
        return (
            f"running, but crashed: its writer (pid {manifest.pid} on {manifest.host}) was "
            f"last seen {seen}"
        )
    return f"running (last seen {seen})"


def _code_text(record: RunRecord, p: Provenance) -> str | None:
    if p.git_commit is None and p.git_branch is None:
        return None  # not a repository, or git off
    text = p.git_commit or "(no commit yet)"
    if p.git_branch:
        text += f" on {p.git_branch}"
    if p.git_dirty and p.git_diff_hash:
        kept = "kept" if record.git_diff is not None else "not kept"
        return f"{text}, dirty (diff sha256:{p.git_diff_hash[:12]}, {kept})"
    return text + (", dirty" if p.git_dirty else ", clean")


def _provenance_lines(record: RunRecord) -> list[tuple[str, str]]:
    """``(label, text)`` lines describing a run's provenance, empty fields left out."""
    p = record.provenance
    if p is None:
        return []
    packages = None
    if p.packages_hash:
        listed = record.packages
        count = "object missing" if listed is None else f"{len(listed)} installed"
        packages = f"{count} (sha256:{p.packages_hash[:12]})"
    host = None
    if p.hostname or p.pid:
        host = (p.hostname or "?") + (f" (pid {p.pid})" if p.pid else "")
    lines = [
        ("commit", _code_text(record, p)),
        ("remote", p.git_remote),
        ("command", None if p.command is None else " ".join(p.command)),
        ("entry", p.entry_point),
        ("cwd", p.cwd),
        ("python", " ".join(x for x in (p.python_implementation, p.python_version) if x)),
        ("platform", p.platform),
        ("host", host),
        ("packages", packages),
        ("env", " ".join(f"{name}={value}" for name, value in p.env.items())),
    ]
    return [(label, text) for label, text in lines if text]


def _provenance_rows(records: list[RunRecord]) -> list[list[Any]]:
    """Rows of ``compare`` for the code and environment each run came from."""
    found = [record.provenance for record in records]
    if all(p is None for p in found):
        return []

    def row(label: str, get: Callable[[Provenance], Any]) -> list[Any]:
        return [label, *(None if p is None else get(p) for p in found)]

    rows = [
        row("git commit", lambda p: p.git_commit[:12] if p.git_commit else None),
        row("git branch", lambda p: p.git_branch),
        row("git dirty", lambda p: None if p.git_dirty is None else str(p.git_dirty).lower()),
        row("git diff", lambda p: p.git_diff_hash[:12] if p.git_diff_hash else None),
        row("python", lambda p: p.python_version),
        row("host", lambda p: p.hostname),
        ["packages", *(_package_count(record) for record in records)],
    ]
    return [cells for cells in rows if any(cell is not None for cell in cells[1:])]


def _package_count(record: RunRecord) -> int | None:
    packages = record.packages
    return None if packages is None else len(packages)


def package_differences(records: list[RunRecord]) -> dict[str, list[str | None]]:
    """Packages whose version differs between runs: ``{name: [version or None per run]}``.

    ``None`` is a run without that package. Runs without a package list are left out of
    the comparison (their cells are ``None`` too).
    """
    hashes = {r.provenance.packages_hash for r in records if r.provenance is not None}
    lists = [record.packages for record in records]
    known = [packages for packages in lists if packages is not None]
    if len(known) < 2 or len(hashes) < 2:
        return {}  # one list (or one object shared by every run): nothing differs
    differences: dict[str, list[str | None]] = {}
    for name in sorted(set().union(*known)):
        versions = [None if packages is None else packages.get(name) for packages in lists]
        if len({packages.get(name) for packages in known}) > 1:
            differences[name] = versions
    return differences


def cmd_compare(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Provenance, params and last/min/max of each metric, one column per run.

    Packages appear only where their versions differ (added, removed or changed).
    """
    records = [_resolve(store, ref) for ref in args.runs]
    stats = [{name: _metric_stats(points) for name, points in r.metrics.items()} for r in records]
    differences = package_differences(records)
    if out.json_mode:
        out.json(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "crashed": r.crashed,
                    "provenance": _provenance_json(r.provenance),
                    "package_differences": {
                        name: versions[index] for name, versions in differences.items()
                    },
                    "params": r.params,
                    "metrics": s,
                }
                for index, (r, s) in enumerate(zip(records, stats, strict=True))
            ]
        )
        return 0
    shown = store.short_ids()
    columns = ["", *(f"{r.name} ({shown.get(r.id, r.id)})" for r in records)]
    params = sorted({key for r in records for key in r.params})
    rows: list[list[Any]] = [["status", *(_status(r) for r in records)]]
    rows += _provenance_rows(records)
    listed = [record.packages is not None for record in records]
    rows += [
        [
            f"package {name}",
            *(v or ("-" if has else None) for v, has in zip(vs, listed, strict=True)),
        ]
        for name, vs in differences.items()
    ]
    rows += [[f"param {key}", *(r.params.get(key) for r in records)] for key in params]
    for name in sorted({key for s in stats for key in s}):
        for stat in ("last", "min", "max"):
            rows.append(
                [f"{name} ({stat})", *(s[name][stat] if name in s else None for s in stats)]
            )
    marked = [[row[0], *_mark_differences(row[1:])] for row in rows]
    out.table(columns, marked)
    return 0


def _mark_differences(cells: list[Any]) -> list[Any]:
    """Mark cells of a row whose values differ, so a person sees what changed."""
    texts = [_text(cell) for cell in cells]
    if len(set(texts)) <= 1:
        return texts
    return [f"{text} *" if text else text for text in texts]


def cmd_export(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Write the runs, metrics or tasks table to a file (or CSV to stdout with ``-o -``)."""
    runs = [_resolve(store, ref) for ref in args.runs] if args.runs else None
    filters = _filters(args)
    if runs is not None and filters:
        raise _UsageError("give run references or filters, not both")
    selected = runs if runs is not None else _only_crashed(args, store.runs(**filters))
    if args.kind != "runs":
        _load_with_progress(out, selected)
    table = store.table(args.kind, selected, names=args.metric or None)
    rows = len(next(iter(table.values()), []))
    if args.output == "-":
        write_csv_stream(table, out.stream)
        return 0
    try:
        path = write_table(table, args.output, args.format)
    except ImportError as exc:
        raise CliError(str(exc)) from None
    if out.json_mode:
        out.json({"path": str(path), "kind": args.kind, "rows": rows})
    else:
        out.line(f"wrote {rows} {args.kind} rows to {path}")
    return 0


def _load_with_progress(out: Output, records: list[RunRecord]) -> None:
    """Read the runs' events, with a progress bar when a person watches many load."""
    if out.console is None or not out.console.is_terminal or len(records) < 2:
        return
    progress = _rich.progress.Progress(console=out.console, transient=True)
    with progress:
        for record in progress.track(records, description="reading runs"):
            _ = record.events  # loads and caches the run's events


def _event_json(event: Event) -> dict[str, Any]:
    data = msgspec.structs.asdict(event)
    data["kind"] = type(event).__struct_config__.tag
    return data


def _event_text(event: Event, names: dict[str, str]) -> str:
    when = datetime.fromtimestamp(event.ts / 1e9, tz=UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]
    kind = type(event).__struct_config__.tag
    where = names.get(event.span_id, "")
    fields = msgspec.structs.asdict(event)
    for key in ("run_id", "span_id", "parent_id", "seq", "ts"):
        fields.pop(key)
    if isinstance(event, Metric):
        detail = f"{event.name}={_text(event.value)} step={event.step}"
    elif kind == "task_started":
        names[event.span_id] = fields["name"]
        where = fields["name"]
        detail = ""
    else:
        detail = " ".join(
            f"{k}={_text(v)}" for k, v in fields.items() if v not in (None, "", (), {}, [])
        )
    return "  ".join(part for part in (when, f"{kind:<13}", where, detail) if part)


def _task_names(events: list[Event]) -> dict[str, str]:
    return {
        event.span_id: event.name  # type: ignore[attr-defined]
        for event in events
        if type(event).__struct_config__.tag == "task_started"
    }


def _writer_alive(record: RunRecord) -> bool:
    """Whether the process that owns a running run still exists (only knowable on its host)."""
    manifest = record.manifest
    if manifest.host != socket.gethostname() or not manifest.pid:
        return True
    try:
        os.kill(manifest.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmd_tail(
    store: Store,
    args: argparse.Namespace,
    out: Output,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print a run's last events; with ``--follow``, keep printing until the run ends."""
    record = _resolve(store, args.run)
    tail = EventTail(store.layout, record.id)
    names: dict[str, str] = {}

    def emit(events: list[Event]) -> None:
        for event in events:
            if out.json_mode:
                out.stream.write(_json.encode(_plain(_event_json(event))).decode() + "\n")
            else:
                out.line(_event_text(event, names))
        out.stream.flush()

    backlog = tail.poll()
    names.update(_task_names(backlog))  # for events printed later
    emit(backlog[-args.lines :] if args.lines else [])
    if not args.follow:
        return 0
    deadline = time.monotonic() + args.timeout if args.timeout else math.inf
    while time.monotonic() < deadline:
        current = store.run(record.id)
        fresh = tail.poll()
        emit(fresh)
        if current.status != "running" and not fresh:
            if not out.json_mode:
                out.line(f"run {current.status}")
            return 0 if current.status == "finished" else 1
        if not fresh and not _writer_alive(current):
            raise CliError(
                f"run {record.id} is marked running but its writer "
                f"(pid {current.manifest.pid}) is gone"
            )
        sleep(args.interval)
    raise CliError(f"run still running after --timeout {args.timeout:g}s")


def cmd_rm(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Delete runs (their objects go at the next ``gc``)."""
    records = [_resolve(store, ref) for ref in args.runs]
    running = [r for r in records if r.status == "running"]
    if running and not args.force:
        shown = store.short_ids()
        names = ", ".join(f"{r.name} ({shown.get(r.id, r.id)})" for r in running)
        raise CliError(f"refusing to delete running runs: {names}; pass --force")
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("deleting needs confirmation: pass --yes")
        shown = store.short_ids()
        listed = ", ".join(f"{r.name} ({shown.get(r.id, r.id)})" for r in records)
        answer = input(f"delete {len(records)} run(s): {listed}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.line("nothing deleted")
            return 1
    for record in records:
        store.remove(record, force=True)
    if out.json_mode:
        out.json({"removed": [r.id for r in records]})
    else:
        out.line(f"removed {len(records)} run(s)")
    return 0


def cmd_gc(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Delete objects no run references, and stale temporary files."""
    report = store.collect_garbage(grace=args.grace, dry_run=args.dry_run)
    if out.json_mode:
        out.json({"dry_run": report.dry_run, "files": report.files, "bytes": report.bytes})
    else:
        verb = "would remove" if report.dry_run else "removed"
        out.line(f"{verb} {report.files} file(s), {report.bytes:,} bytes")
    return 0


def cmd_ui(store: Store, args: argparse.Namespace, out: Output) -> int:  # noqa: ARG001
    """Serve the web UI over the store until interrupted."""
    try:
        from strikes.ui.server import serve  # noqa: PLC0415 - the UI extra is optional
    except ImportError as exc:
        raise CliError(f"the web UI needs its extra: pip install 'strikes[ui]' ({exc})") from None
    try:
        serve(store, host=args.host, port=args.port, token=args.token, open_browser=args.open)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    return 0


# -- the parser -----------------------------------------------------------------------


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--project", help="only this project")
    group.add_argument("--tag", action="append", help="only runs with this tag (repeatable)")
    group.add_argument(
        "--status",
        action="append",
        choices=["running", "finished", "failed", "crashed"],
        help="only runs with this status (repeatable); crashed: running, but silent",
    )
    group.add_argument("--name", help="run name glob pattern, e.g. 'train-*'")
    group.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="param equals value (repeatable)"
    )
    group.add_argument("--since", metavar="TIME", help="started after: 2h, 3d or an ISO time")
    group.add_argument("--until", metavar="TIME", help="started before: 2h, 3d or an ISO time")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``strikes``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        default=argparse.SUPPRESS,
        help="the store directory (default: $STRIKES_DIR or ./.strikes)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument(
        "--stale-after",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="a running run silent this long counts as crashed "
        "(default: $STRIKES_STALE_AFTER or 60, or 3 of the run's heartbeat intervals)",
    )
    parser = argparse.ArgumentParser(
        prog="strikes", description="Look at runs recorded by strikes.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    runs = commands.add_parser("runs", parents=[common], help="list runs")
    _add_filters(runs)
    runs.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"at most this many runs, 0 for all (default {TABLE_LIMIT}; all with --json)",
    )
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", parents=[common], help="show one run")
    show.add_argument("run", help="run id, unique id prefix or name")
    show.set_defaults(handler=cmd_show)

    compare = commands.add_parser("compare", parents=[common], help="compare runs side by side")
    compare.add_argument("runs", nargs="+", metavar="RUN")
    compare.set_defaults(handler=cmd_compare)

    export = commands.add_parser("export", parents=[common], help="export runs, metrics or tasks")
    export.add_argument("kind", choices=["runs", "metrics", "tasks"])
    export.add_argument("runs", nargs="*", metavar="RUN", help="these runs (default: all matching)")
    export.add_argument(
        "-o", "--output", required=True, help="file path (.csv, .parquet, .jsonl) or - for CSV"
    )
    export.add_argument("--format", choices=["csv", "parquet", "json"], default=None)
    export.add_argument("--metric", action="append", help="only this metric (repeatable)")
    _add_filters(export)
    export.set_defaults(handler=cmd_export)

    tail = commands.add_parser("tail", parents=[common], help="print a run's events as they arrive")
    tail.add_argument("run")
    tail.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the run ends"
    )
    tail.add_argument("-n", "--lines", type=int, default=20, help="events of the backlog to print")
    tail.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    tail.add_argument("--timeout", type=float, default=0.0, help="stop following after this many s")
    tail.set_defaults(handler=cmd_tail)

    rm = commands.add_parser("rm", parents=[common], help="delete runs")
    rm.add_argument("runs", nargs="+", metavar="RUN")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--force", action="store_true", help="also delete runs marked running")
    rm.set_defaults(handler=cmd_rm)

    gc = commands.add_parser("gc", parents=[common], help="delete unreferenced objects")
    gc.add_argument("--dry-run", action="store_true", help="only report what would go")
    gc.add_argument("--grace", type=float, default=3600.0, help="keep files younger than this (s)")
    gc.set_defaults(handler=cmd_gc)

    ui = commands.add_parser("ui", parents=[common], help="serve the web UI (strikes[ui])")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=7410)
    ui.add_argument("--token", default=os.environ.get("STRIKES_UI_TOKEN"), help="access token")
    ui.add_argument("--open", action="store_true", help="open a browser")
    ui.set_defaults(handler=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(stdout or sys.stdout, json_mode=getattr(args, "json", False), use_rich=True)
    try:
        store = open_store(
            getattr(args, "dir", None), stale_after=getattr(args, "stale_after", None)
        )
        handler: Callable[[Store, argparse.Namespace, Output], int] = args.handler
        return handler(store, args, out)
    except _UsageError as exc:
        parser.error(str(exc))
    except CliError as exc:
        return _fail(str(exc))
    except (ValueError, TypeError, OSError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    sys.stderr.write(f"strikes: error: {message}\n")
    return 1


def _entry() -> NoReturn:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
