# ruff: noqa: RUF001 - the tables write ratios with the multiplication sign
"""strikes against the libraries users would pick instead, side by side, in one run.

    .venv/bin/python benchmarks/suite.py --quick     # ~3 minutes once the venvs exist
    .venv/bin/python benchmarks/suite.py             # full sizes (what docs/performance.md shows)
    .venv/bin/python benchmarks/suite.py --docs      # full, and rewrite docs/performance.md's table

Each peer gets its own virtualenv under ``benchmarks/.venvs/`` (created on first use,
reused after), so its dependencies never enter the project's environment; strikes and the
floor run in the interpreter running this script (the project's venv). Every workload of
every peer runs in a fresh subprocess of that peer's venv (``benchmarks/peers/*_worker.py``),
which prints its figures as JSON; this script takes the median of the repeats, divides
each peer's figure by strikes' from the same run, prints a table and writes
``benchmarks/results/<mode>.json``, ``<mode>.md`` and ``<mode>.png`` (the chart is drawn by
matplotlib from one more venv, ``.venvs/_plot``). Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / "peers"
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "performance.md"

WORKLOADS = ("metrics", "task", "concurrent", "eval")
TITLES = {
    "metrics": "1. metrics in one run",
    "task": "2. traced task calls",
    "concurrent": "3. concurrent runs (asyncio.gather)",
    "eval": "4. scored eval loop (async, concurrency 100)",
}

# name -> how to get it. "venv": None runs in this interpreter (the project's venv).
# Peers are pinned: the figures name the versions measured, and an unpinned install of
# dreadnode spent over 10 minutes in pip's resolver here. Bump them deliberately.
PEERS: dict[str, dict[str, Any]] = {
    "strikes": {"label": "strikes", "worker": "strikes_worker.py", "venv": None},
    "floor": {"label": "floor (msgspec)", "worker": "floor_worker.py", "venv": None},
    "dreadnode": {
        "label": "dreadnode",
        "worker": "dreadnode_worker.py",
        "packages": ["dreadnode==2.0.51"],
    },
    "opentelemetry": {
        "label": "OpenTelemetry",
        "worker": "otel_worker.py",
        "packages": [
            "opentelemetry-sdk==1.45.2",
            "opentelemetry-exporter-otlp-proto-common==1.45.2",
        ],
    },
    "mlflow": {"label": "MLflow", "worker": "mlflow_worker.py", "packages": ["mlflow==3.17.2"]},
    "wandb": {"label": "W&B", "worker": "wandb_worker.py", "packages": ["wandb==0.31.0"]},
    "logfire": {"label": "Logfire", "worker": "logfire_worker.py", "packages": ["logfire==5.2.0"]},
}
PLOT_PACKAGES = ["matplotlib"]

SIZES = {
    "full": {
        "metrics": 100_000,
        "task": 20_000,
        "concurrent": (100, 1000),  # runs, metrics per run
        "eval": 10_000,
        "every": 100,
        "concurrency": 100,
        "repeats": 5,
        "budget": 60.0,  # a worker stops repeating after this many seconds (min 1 repeat)
        "timeout": 1200,
    },
    "quick": {
        "metrics": 20_000,
        "task": 5_000,
        "concurrent": (100, 200),
        "eval": 2_000,
        "every": 100,
        "concurrency": 100,
        "repeats": 3,
        "budget": 4.0,
        "timeout": 300,
    },
}

# Peers whose calls cost around a millisecond run fewer events, so the suite stays minutes
# long; their per-event figures are measured on the smaller size, and the table says so.
CAPS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "mlflow": {"metrics": 10_000, "task": 2_000, "eval": 1_000, "concurrent": (20, 1000)},
        "wandb": {"metrics": 20_000, "concurrent": (20, 1000)},
        "logfire": {"metrics": 50_000, "concurrent": (100, 200)},
    },
    "quick": {
        "mlflow": {"metrics": 1_000, "task": 500, "eval": 300, "concurrent": (10, 200)},
        "wandb": {"metrics": 5_000, "concurrent": (10, 200)},
        "logfire": {"metrics": 10_000, "task": 2_000, "eval": 1_000, "concurrent": (20, 200)},
        "dreadnode": {"task": 2_000},
    },
}

# (field, label, unit, decimals): the figures shown per workload; the first is the headline.
FIGURES = {
    "metrics": [
        ("e2e_us", "end-to-end µs/event (until on disk)", 2),
        ("caller_us", "µs per call in the caller", 2),
        ("bytes_per_event", "bytes on disk per event", 0),
        ("peak_rss_mb", "peak RSS, MB", 0),
        ("rss_growth_mb", "RSS growth while logging, MB", 1),
    ],
    "task": [
        ("added_us", "µs added per call (until on disk)", 1),
        ("caller_added_us", "µs added per call in the caller", 1),
        ("bare_added_us", "µs added per call, no inputs/outputs recorded", 1),
        ("bytes_per_call", "bytes on disk per call", 0),
    ],
    "concurrent": [
        ("us_per_event", "µs per metric (wall / events)", 2),
        ("wall_s", "wall time, s", 2),
    ],
    "eval": [
        ("us_per_sample", "µs per sample (wall / samples)", 1),
        ("added_us", "µs added per sample vs plain asyncio", 1),
    ],
}


# -- environments --------------------------------------------------------------------------


def base_python() -> str:
    """The interpreter the peer venvs are made from: this one's base installation."""
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, packages: list[str], *, reinstall: bool, log) -> tuple[str | None, str]:
    """Create (or reuse) ``.venvs/<name>`` with ``packages``; return (python, error)."""
    path = VENVS / name
    marker = path / ".bench-packages.json"
    if reinstall and path.exists():
        shutil.rmtree(path)
    if marker.exists():
        try:
            if json.loads(marker.read_text()).get("packages") == packages:
                return str(venv_python(name)), ""
        except ValueError:
            pass
    log(f"  creating {path.relative_to(ROOT)} and installing {' '.join(packages)} ...")
    started = time.perf_counter()
    VENVS.mkdir(parents=True, exist_ok=True)
    try:
        if not venv_python(name).exists():
            subprocess.run(
                [base_python(), "-m", "venv", str(path)], check=True, capture_output=True, text=True
            )
        done = subprocess.run(
            [
                str(venv_python(name)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                *packages,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the venv: {exc}"
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return None, f"pip install {' '.join(packages)} failed: {tail[:400]}"
    marker.write_text(json.dumps({"packages": packages, "created": _now()}))
    log(f"  ... done in {time.perf_counter() - started:.0f} s")
    return str(venv_python(name)), ""


def project_python() -> str:
    """An interpreter that imports strikes: this one, else the project's .venv."""
    probe = "import strikes, msgspec"
    for python in (sys.executable, str(ROOT / ".venv" / "bin" / "python")):
        if Path(python).exists():
            ok = subprocess.run([python, "-c", probe], capture_output=True, check=False)
            if ok.returncode == 0:
                return python
    raise SystemExit(
        "strikes does not import here: run this with the project's venv "
        "(.venv/bin/python benchmarks/suite.py) after `pip install -e .`"
    )


# -- running -------------------------------------------------------------------------------


def worker_args(peer: str, workload: str, mode: str, repeats: int | None) -> tuple[list[str], dict]:
    sizes = dict(SIZES[mode])
    cap = CAPS[mode].get(peer, {}).get(workload)
    args = [
        "--workload",
        workload,
        "--repeats",
        str(repeats or sizes["repeats"]),
        "--budget",
        str(sizes["budget"]),
        "--every",
        str(sizes["every"]),
        "--concurrency",
        str(sizes["concurrency"]),
    ]
    if workload == "concurrent":
        runs, each = cap or sizes["concurrent"]
        args += ["--runs", str(runs), "--n", str(each)]
        shape = {"runs": runs, "n": each, "events": runs * each}
    else:
        n = cap or sizes[workload]
        args += ["--n", str(n)]
        shape = {"n": n}
    shape["capped"] = cap is not None
    shape["full_size"] = sizes[workload]
    return args, shape


def run_worker(python: str, peer: str, workload: str, mode: str, repeats, workdir: Path):
    args, shape = worker_args(peer, workload, mode, repeats)
    directory = Path(tempfile.mkdtemp(prefix=f"{peer}-{workload}-", dir=workdir))
    command = [python, str(PEERS_DIR / PEERS[peer]["worker"]), *args, "--dir", str(directory)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SIZES[mode]["timeout"],
            env=env,
            cwd=str(PEERS_DIR),
            check=False,
        )
        out, err = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"timed out after {SIZES[mode]['timeout']} s"
    elapsed = time.perf_counter() - started
    result = None
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            break
    if result is None:
        tail = " ".join(err.strip().splitlines()[-3:])
        result = {
            "peer": peer,
            "workload": workload,
            "supported": False,
            "error": True,
            "reason": f"worker failed: {tail[:400]}",
        }
    result["shape"] = shape
    result["seconds"] = round(elapsed, 2)
    shutil.rmtree(directory, ignore_errors=True)
    return result


# -- figures -------------------------------------------------------------------------------


def medians(result: dict[str, Any]) -> dict[str, float]:
    """Median of each figure over the repeats (peak RSS: from the first, fresh, repeat)."""
    records = result.get("repeats") or []
    fields = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))})
    out = {f: statistics.median([r[f] for r in records if f in r]) for f in fields}
    if "lost_fraction" in out:  # the worst repeat: any loss is worth a footnote
        out["lost_fraction"] = max(r.get("lost_fraction", 0.0) for r in records)
    if "peak_rss_mb" in out and "children_rss_mb" in out:
        out["peak_rss_mb"] += out["children_rss_mb"]  # W&B's service process holds the data
    shape = result.get("shape", {})
    if "wall_s" in out and "us_per_event" in out and shape.get("capped"):
        # fewer runs or events were measured: the wall time of the full shape, estimated
        runs, each = shape["full_size"]
        out["wall_s"] = out["us_per_event"] * runs * each / 1e6
        out["wall_estimated"] = 1
    return out


def summarize(results: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """{workload: {peer: {field: median}}} and the ratios to strikes."""
    summary: dict[str, Any] = {}
    for workload in WORKLOADS:
        per_peer = {}
        for peer, by_workload in results.items():
            result = by_workload.get(workload)
            if result and result.get("supported"):
                per_peer[peer] = medians(result)
        base = per_peer.get("strikes", {})
        ratios = {
            peer: {
                field: figures[field] / base[field]
                for field, _label, _d in FIGURES[workload]
                if field in figures and base.get(field)
            }
            for peer, figures in per_peer.items()
        }
        summary[workload] = {"medians": per_peer, "ratios": ratios}
    return summary


def _fmt(value: float, decimals: int) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if decimals == 0 and value >= 10:
        return f"{value:.0f}"
    return f"{value:.{max(decimals, 1) if value < 10 else decimals}f}"


def _ratio(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 10:
        return f"{value:.0f}×"
    return f"{value:.1f}×" if value >= 0.95 else f"{value:.2f}×"


def markdown(data: dict[str, Any]) -> str:  # noqa: C901 - one table, many cases
    """The results as Markdown: the headline table, then per-peer notes."""
    results, summary, order = data["results"], data["summary"], data["order"]
    labels = [PEERS[p]["label"] for p in order]
    lines = [
        "| workload | figure | " + " | ".join(labels) + " |",
        "|---|---|" + "---:|" * len(order),
    ]
    footnotes: list[str] = []

    def note(text: str) -> str:
        if text not in footnotes:
            footnotes.append(text)
        return f"<sup>{footnotes.index(text) + 1}</sup>"

    for workload in WORKLOADS:
        first = True
        if workload == "concurrent":
            cells = []
            for peer in order:
                result = results.get(peer, {}).get(workload)
                if result is None:
                    cells.append("—")
                elif result.get("supported"):
                    cells.append(result.get("support", "yes"))
                else:
                    cells.append("no")
            lines.append(f"| {_title(workload, data)} | supports it | " + " | ".join(cells) + " |")
            first = False
        for field, label, decimals in FIGURES[workload]:
            headline = field == FIGURES[workload][0][0]
            cells = []
            for peer in order:
                result = results.get(peer, {}).get(workload)
                figures = summary[workload]["medians"].get(peer)
                if result is None:
                    cells.append("—")
                elif not result.get("supported") or figures is None:
                    cells.append(
                        "n/a"
                        + note(
                            f"{PEERS[peer]['label']}, {workload}: {result.get('reason', 'not run')}"
                        )
                        if headline
                        else ""
                    )
                elif field not in figures:
                    cells.append("—")
                else:
                    cell = _fmt(figures[field], decimals)
                    if field == "wall_s" and figures.get("wall_estimated"):
                        cell = (
                            "~"
                            + cell
                            + note(
                                "~: estimated for the full shape from the µs per metric measured "
                                "on fewer runs or metrics"
                            )
                        )
                    ratio = summary[workload]["ratios"].get(peer, {}).get(field)
                    if peer != "strikes" and ratio is not None:
                        cell += f" ({_ratio(ratio)})"
                    lost = figures.get("lost_fraction", 0.0)
                    if headline and lost > 0:
                        cell += " ⚠" + note(
                            f"{PEERS[peer]['label']}, {workload}: lost up to {lost:.0%} of its "
                            "spans in a repeat: its BatchSpanProcessor's queue holds 2,048 spans "
                            "and drops what does not fit (the figures cover only what was kept)"
                        )
                    if headline and result["shape"].get("capped"):
                        shape = result["shape"]
                        size = (
                            f"{shape['runs']} runs × {shape['n']:,}"
                            if workload == "concurrent"
                            else f"{shape['n']:,}"
                        )
                        cell += note(
                            f"{PEERS[peer]['label']}, {workload}: measured on {size} "
                            "(fewer, to keep the suite minutes long; per-event figures)"
                        )
                    cells.append(cell)
            title = _title(workload, data) if first else ""
            lines.append(f"| {title} | {label} | " + " | ".join(cells) + " |")
            first = False
    lines.append("")
    lines.append(
        "Each cell: the median over the repeats, and in brackets that figure divided by "
        "strikes' from the same run (above 1× means strikes is faster or smaller). "
        "The floor column is the same events built as msgspec Structs and written in "
        "batches with no library around them."
    )
    lines.append("")
    for i, text in enumerate(footnotes, 1):
        lines.append(f"<sup>{i}</sup> {text}  ")
    lines.append("")
    lines.append("| peer | version | how each workload was done |")
    lines.append("|---|---|---|")
    for peer in order:
        by_workload = results.get(peer, {})
        any_result = next(iter(by_workload.values()), {})
        version = any_result.get("version") or data["install_errors"].get(peer, "not installed")
        how = []
        for workload in WORKLOADS:
            result = by_workload.get(workload)
            if not result:
                continue
            text = result.get("notes") or result.get("reason", "")
            checks = sorted({str(r["check"]) for r in result.get("repeats", []) if "check" in r})
            if result.get("check"):
                checks.insert(0, result["check"])
            if checks:
                text += f" [read back: {'; '.join(checks[:2])}]"
            for warning in result.get("warnings", []):
                text += f" **{warning}**"
            how.append(f"{workload}: {text}")
        lines.append(f"| {PEERS[peer]['label']} | {version} | " + "<br>".join(how) + " |")
    return "\n".join(lines) + "\n"


def _title(workload: str, data: dict[str, Any]) -> str:
    sizes = SIZES[data["mode"]]
    if workload == "concurrent":
        runs, each = sizes["concurrent"]
        return f"{TITLES[workload]}: {runs} runs × {each:,} metrics, await every {sizes['every']}"
    if workload == "metrics":
        return f"{TITLES[workload]}: {sizes['metrics']:,}"
    if workload == "task":
        return f"{TITLES[workload]}: {sizes['task']:,}"
    return f"{TITLES[workload]}: {sizes['eval']:,} samples"


def text_table(data: dict[str, Any]) -> str:
    """A plain-text version of the headline figures for the terminal."""
    order, summary = data["order"], data["summary"]
    width = 16
    rows = [
        "figure".ljust(44) + "".join(PEERS[p]["label"][: width - 1].rjust(width) for p in order)
    ]
    for workload in WORKLOADS:
        rows.append(TITLES[workload])
        for field, label, decimals in FIGURES[workload]:
            cells = []
            for peer in order:
                figures = summary[workload]["medians"].get(peer)
                if not figures or field not in figures:
                    cells.append("n/a".rjust(width))
                    continue
                cell = _fmt(figures[field], decimals)
                ratio = summary[workload]["ratios"].get(peer, {}).get(field)
                if peer != "strikes" and ratio is not None:
                    cell += f" {_ratio(ratio)}"
                cells.append(cell.rjust(width))
            rows.append(("  " + label)[:43].ljust(44) + "".join(cells))
    return "\n".join(rows)


def machine() -> dict[str, Any]:
    model = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- chart ---------------------------------------------------------------------------------


def plot(results_json: Path, out: Path) -> None:
    """Draw the chart (runs in the _plot venv, where matplotlib is)."""
    import matplotlib as mpl  # noqa: PLC0415 - only the _plot venv has matplotlib

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    data = json.loads(results_json.read_text())
    summary, order = data["summary"], data["order"]
    peers = [p for p in order if p != "floor"]
    colors = {
        "strikes": "#d9480f",
        "dreadnode": "#5c7cfa",
        "opentelemetry": "#495057",
        "mlflow": "#1c7ed6",
        "wandb": "#f59f00",
        "logfire": "#ae3ec9",
    }
    fig, axes = plt.subplots(1, 4, figsize=(17, 5.2))
    lost_any = False
    for ax, workload in zip(axes, WORKLOADS, strict=True):
        field, label, _decimals = FIGURES[workload][0]
        medians_ = summary[workload]["medians"]
        xs, heights, names = [], [], []
        for i, peer in enumerate(peers):
            names.append(PEERS[peer]["label"])
            value = medians_.get(peer, {}).get(field)
            xs.append(i)
            heights.append(value or 0)
        bars = ax.bar(
            xs,
            [h or float("nan") for h in heights],
            color=[colors.get(p, "#868e96") for p in peers],
        )
        ax.set_yscale("log")
        ax.set_xticks(xs, names, rotation=35, ha="right", fontsize=9)
        ax.set_title(TITLES[workload], fontsize=10)
        ax.set_ylabel(label + " (log)", fontsize=9)
        floor = medians_.get("floor", {}).get(field)
        if floor:
            ax.axhline(floor, color="#2b8a3e", linestyle="--", linewidth=1)
            ax.text(
                len(peers) - 0.6,
                floor,
                "floor",
                color="#2b8a3e",
                va="bottom",
                ha="right",
                fontsize=8,
                zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            )
        ratios = summary[workload]["ratios"]
        for bar, peer, height in zip(bars, peers, heights, strict=True):
            if not height:
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    0.02,
                    "n/a",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="#868e96",
                    transform=ax.get_xaxis_transform(),
                )
                continue
            ratio = ratios.get(peer, {}).get(field)
            text = f"{height:.3g}" if peer == "strikes" else f"{ratio:.3g}×" if ratio else ""
            if medians_.get(peer, {}).get("lost_fraction"):
                text += "*"
                lost_any = True
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                height,
                text,
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.margins(y=0.15)
    fig.suptitle(
        f"strikes vs peers — lower is better; labels: figure ÷ strikes' "
        f"({data['mode']} sizes, {data['machine']['nproc']} cores, "
        f"{data['machine']['cpu']}, Python {data['machine']['python']})",
        fontsize=11,
    )
    if lost_any:
        fig.text(
            0.995,
            0.005,
            "* dropped spans during the workload: it covers less data",
            ha="right",
            va="bottom",
            fontsize=8,
            color="#495057",
        )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def draw_chart(json_path: Path, png_path: Path, *, reinstall: bool, log) -> str:
    python, error = ensure_venv("_plot", PLOT_PACKAGES, reinstall=reinstall, log=log)
    if python is None:
        return error
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--plot", str(json_path), str(png_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return "chart failed: " + " ".join(done.stderr.strip().splitlines()[-2:])
    return ""


# -- docs ----------------------------------------------------------------------------------

START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_docs(data: dict[str, Any], table: str, png_name: str) -> None:
    m = data["machine"]
    block = "\n".join(
        [
            START,
            (
                f"Measured {data['finished']} with `{data['command']}` "
                f"({data['mode']} sizes; suite wall time {data['wall_s']:.0f} s)."
            ),
            "",
            (
                f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory']} RAM, "
                f"{m['implementation']} {m['python']}, {m['os']}; load average "
                f"{data['load_before']:.2f} before the run, {data['load_after']:.2f} after."
            ),
            "",
            f"![strikes vs peers](../benchmarks/results/{png_name})",
            "",
            table.rstrip(),
            END,
        ]
    )
    text = DOC.read_text() if DOC.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


# -- main ----------------------------------------------------------------------------------


def main() -> None:  # noqa: C901 - argument handling, then one loop
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, ~3 minutes")
    parser.add_argument("--peers", help="comma-separated subset (strikes always runs)")
    parser.add_argument("--workloads", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, help="override the number of repeats")
    parser.add_argument("--docs", action="store_true", help="rewrite docs/performance.md's table")
    parser.add_argument("--reinstall", action="store_true", help="recreate the peer venvs")
    parser.add_argument(
        "--render",
        action="store_true",
        help="run nothing: redraw the table, chart (and docs) from the last results/<mode>.json",
    )
    parser.add_argument("--plot", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot:
        plot(Path(args.plot[0]), Path(args.plot[1]))
        return

    mode = "quick" if args.quick else "full"
    if args.render:
        render(mode, docs=args.docs)
        return
    order = list(PEERS)
    if args.peers:
        wanted = {p.strip() for p in args.peers.split(",")} | {"strikes"}
        unknown = wanted - set(PEERS)
        if unknown:
            parser.error(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
        order = [p for p in order if p in wanted]
    workloads = list(WORKLOADS)
    if args.workloads:
        workloads = [w.strip() for w in args.workloads.split(",")]
        bad = set(workloads) - set(WORKLOADS)
        if bad:
            parser.error(f"unknown workloads {sorted(bad)}")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    python = Path(sys.executable)
    shown = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else "python"
    command = f"{shown} benchmarks/suite.py" + " ".join(["", *sys.argv[1:]]).rstrip()
    log(f"strikes benchmark suite, {mode} sizes: {', '.join(order)}")
    pythons: dict[str, str] = {}
    install_errors: dict[str, str] = {}
    own = project_python()
    setup_started = time.perf_counter()
    for peer in order:
        spec = PEERS[peer]
        if spec.get("venv", True) is None:
            pythons[peer] = own
            continue
        python, error = ensure_venv(peer, spec["packages"], reinstall=args.reinstall, log=log)
        if python is None:
            install_errors[peer] = error
            log(f"  {peer}: {error}")
        else:
            pythons[peer] = python
    setup_s = time.perf_counter() - setup_started

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: dict[str, dict[str, dict]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="strikes-bench-"))
    try:
        for peer in order:
            results[peer] = {}
            if peer not in pythons:
                for workload in workloads:
                    results[peer][workload] = {
                        "peer": peer,
                        "workload": workload,
                        "supported": False,
                        "reason": f"not installed: {install_errors[peer]}",
                    }
                continue
            for workload in workloads:
                result = run_worker(pythons[peer], peer, workload, mode, args.repeats, workdir)
                results[peer][workload] = result
                status = "ok" if result.get("supported") else f"n/a: {result.get('reason', '')}"
                head = ""
                if result.get("supported"):
                    field = FIGURES[workload][0][0]
                    value = medians(result).get(field)
                    head = f"{field}={value:.4g} " if value is not None else ""
                log(
                    f"  {peer:<14} {workload:<11} {result['seconds']:6.1f} s  "
                    f"{len(result.get('repeats') or [])} repeats  {head}{status[:150]}"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started

    data = {
        "mode": mode,
        "command": command,
        "finished": _now(),
        "wall_s": wall,
        "venv_setup_s": setup_s,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "machine": machine(),
        "sizes": {k: v for k, v in SIZES[mode].items() if k != "timeout"},
        "caps": CAPS[mode],
        "order": order,
        "install_errors": install_errors,
        "results": results,
        "summary": summarize(results),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = mode if (args.peers, args.workloads) == (None, None) else f"{mode}-partial"
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    write_outputs(data, json_path, docs=args.docs, reinstall=args.reinstall)


def write_outputs(data: dict[str, Any], json_path: Path, *, docs: bool, reinstall: bool = False):
    """From the results JSON: the Markdown table, the chart, the terminal table, the docs."""

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    md_path, png_path = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    table = markdown(data)
    md_path.write_text(
        f"# Benchmark results ({data['mode']})\n\n`{data['command']}`, "
        f"{data['finished']}\n\n![chart]({png_path.name})\n\n{table}"
    )
    chart_error = draw_chart(json_path, png_path, reinstall=reinstall, log=log)
    if chart_error:
        log(f"  {chart_error}")
    print(text_table(data))
    print(
        f"\nsuite: {data['wall_s']:.0f} s (plus {data['venv_setup_s']:.0f} s preparing venvs); "
        f"load average {data['load_before']:.2f} -> {data['load_after']:.2f}"
    )
    print(
        f"wrote {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}"
        + ("" if chart_error else f", {png_path.relative_to(ROOT)}")
    )
    if docs:
        update_docs(data, table, png_path.name)
        print(f"updated {DOC.relative_to(ROOT)}")


def render(mode: str, *, docs: bool) -> None:
    json_path = RESULTS / f"{mode}.json"
    if not json_path.exists():
        raise SystemExit(f"no {json_path.relative_to(ROOT)} yet: run the suite first")
    data = json.loads(json_path.read_text())
    data["summary"] = summarize(data["results"])  # the rules may have changed since
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    write_outputs(data, json_path, docs=docs)


if __name__ == "__main__":
    main()
