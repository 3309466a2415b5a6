"""Every speed benchmark in one command (issue #6): the pipeline benchmark and the index benchmark, one
JSON report and a short markdown summary.

    .venv/bin/python bench/run_all.py [--quick] [--out-dir docs]

writes docs/benchmarks.json (machine, command, each benchmark's full report) and docs/benchmarks.md
(machine, command, each benchmark's summary). A benchmark that is not there yet is recorded as
"missing"; one that fails is recorded with its error, the other still runs, and the exit status is 1.
The full run takes a long while (the index benchmark builds a 1M-frame store); run it on a quiet
machine, since the figures are only as good as the machine was idle. --quick checks that everything
works in a few minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import load_average  # noqa: E402

# (report key, module, title in the markdown when it has no summary of its own)
BENCHMARKS = (
    ("pipeline", "bench.pipeline_bench", "Pipeline speed"),
    ("index", "bench.index_bench", "Index and search"),
    ("load", "bench.load_test", "HTTP load"),
)


def _cpu_model() -> str:
    try:
        match = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def _memory_gib() -> float | None:
    try:
        kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        return None
    return round(kb / 2**20, 1)


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")



def machine() -> dict:
    try:
        import torch

        torch_version = torch.__version__
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        torch_version, gpu = None, None
    import sqlite3

    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch_version,
        "sqlite": sqlite3.sqlite_version,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        "git_commit": _git_commit(),
    }


def run_benchmark(module_name: str, quick: bool) -> tuple[dict, str | None]:
    """(report, summary markdown or None); a missing module gives status "missing", a failure "failed"."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, module_name.rpartition(".")[0]):
            return {"status": f"missing: {module_name} is not there yet"}, None
        raise
    started = time.perf_counter()
    try:
        report = module.run(quick=quick)
    except Exception as exc:  # noqa: BLE001 - recorded, and the other benchmarks still run
        return {"status": f"failed: {type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "wall_s": round(time.perf_counter() - started, 1)}, None
    report.setdefault("wall_s", round(time.perf_counter() - started, 1))
    if report.get("failed"):  # a benchmark that records failed parts instead of raising
        report.setdefault("status", f"failed: {', '.join(map(str, report['failed']))}")
    try:
        summary = module.summary_markdown(report)
    except Exception as exc:  # noqa: BLE001
        summary = f"(summary failed: {type(exc).__name__}: {exc})\n"
    return report, summary


def markdown(report: dict, summaries: dict[str, str | None]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Made {report['finished_at']} by `{report['command']}`"
        f"{' (quick: small sizes, few repeats; not for comparison)' if report['quick'] else ''}.",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
        f"{m['memory_gib']} GiB; GPU: {m['gpu'] or 'none'}; {m['platform']}; Python {m['python']}, "
        f"torch {m['torch']}, SQLite {m['sqlite']}; niceness {m['niceness']}"
        f"{'; commit ' + m['git_commit'] if m['git_commit'] else ''}.",
        "",
        f"Load average (1, 5, 15 min) at start {_fmt_load(report['load_average']['start'])}, "
        f"at end {_fmt_load(report['load_average']['end'])}: other work on the machine slows the wall-clock "
        "figures.",
        "",
        "Full reports: benchmarks.json beside this file.",
        "",
    ]
    for key, _, title in BENCHMARKS:
        summary = summaries.get(key)
        if summary is not None:
            lines += [summary.rstrip(), ""]
        else:
            lines += [f"## {title}", "", f"{report['benchmarks'][key].get('status')}", ""]
    return "\n".join(lines)


def _fmt_load(load: list[float] | None) -> str:
    return ", ".join(f"{x:.2f}" for x in load) if load else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: checks that it all works")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs",
                        help="where benchmarks.json and benchmarks.md go (default: docs/)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "bench/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    report: dict = {
        "command": command,
        "quick": args.quick,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": {"start": load_average()},
        "benchmarks": {},
    }
    summaries: dict[str, str | None] = {}
    failed = False
    for key, module_name, _ in BENCHMARKS:
        print(f"[run_all] {key} ({module_name})", file=sys.stderr, flush=True)
        result, summary = run_benchmark(module_name, args.quick)
        report["benchmarks"][key] = result
        summaries[key] = summary
        failed |= str(result.get("status", "")).startswith("failed")
        print(f"[run_all] {key}: {result.get('status', 'done')}", file=sys.stderr, flush=True)
    report["load_average"]["end"] = load_average()
    report["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report, summaries)
    (args.out_dir / "benchmarks.md").write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
