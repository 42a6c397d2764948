"""The benchmark's arithmetic and its markdown: pure functions of the readers' result lines.

A mode is "pinned" (one reader, its container pinned to a CPU) or a number N of
readers (each in its own unpinned container, all measuring the same window).
"""

from __future__ import annotations

import math
import statistics

PINNED = "pinned"


def readers_in(mode: str) -> int:
    return 1 if mode == PINNED else int(mode)


def mode_label(mode: str) -> str:
    n = readers_in(mode)
    return "1 reader, pinned" if mode == PINNED else f"{n} reader{'s' if n > 1 else ''}"


def impl_label(impl: str) -> str:
    return {"py": "lxcfs-py", "ref": "lxcfs C", "kernel": "kernel"}.get(impl, f"lxcfs-py ({impl})")


def parse_result(line: str) -> dict:
    """One readbench result line: PATH OPS ELAPSED_S OPS_PER_S MIN_BYTES MAX_BYTES WARMUP_OPS LATE_S."""
    if line.startswith("error "):
        raise RuntimeError(line[len("error "):].strip())
    _, ops, elapsed, rate, min_bytes, max_bytes, warmup_ops, late = line.rsplit(None, 7)
    return {"ops": int(ops), "elapsed": float(elapsed), "rate": float(rate), "min_bytes": int(min_bytes),
            "max_bytes": int(max_bytes), "warmup_ops": int(warmup_ops), "late": float(late)}


def combine(readers: list[dict], daemon_cpu_seconds: float | None) -> dict:
    """One measurement of N readers at once: their reads/s summed, and the daemon's CPU time per
    open+read+close over every read it served (warm-up included, as its CPU time is)."""
    sample = {
        "rate": sum(r["rate"] for r in readers),
        "ops": sum(r["ops"] for r in readers),
        "max_bytes": max(r["max_bytes"] for r in readers),
        "late": max(r["late"] for r in readers),
        "readers": readers,
    }
    if daemon_cpu_seconds is not None:
        served = sum(r["ops"] + r["warmup_ops"] for r in readers)
        sample["cpu_us_per_op"] = daemon_cpu_seconds * 1e6 / served if served else None
    return sample


def medians(rounds: list[dict]) -> dict:
    """The median over rounds of the total reads/s and of the CPU time per read."""
    result = {"rate": statistics.median(s["rate"] for s in rounds)}
    cpu = [s["cpu_us_per_op"] for s in rounds if s.get("cpu_us_per_op") is not None]
    result["cpu_us_per_op"] = statistics.median(cpu) if cpu else None
    return result


def summarize(samples: dict) -> dict:
    """samples[mode][file][impl] = rounds -> the same shape with their medians."""
    return {mode: {name: {impl: medians(rounds) for impl, rounds in by_impl.items() if rounds}
                   for name, by_impl in by_file.items()}
            for mode, by_file in samples.items()}


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def duration_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cols: list[str]) -> list[str]:
    return [_row(cols), "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]


def compared_with(impls: list[str]) -> list[str]:
    """What lxcfs-py is compared against: C lxcfs and each --base."""
    return [i for i in impls if i not in ("py", "kernel")] if "py" in impls else []


def ratio_table(summary: dict, modes: list[str], impls: list[str]) -> str:
    """lxcfs-py's reads/s over each other's, per file and mode, with the geometric mean over files."""
    lines = []
    for other in compared_with(impls):
        cols = [f"reads/s, lxcfs-py / {impl_label(other)}", *(mode_label(m) for m in modes)]
        lines += [""] if lines else []
        lines += _header(cols)
        ratios = {m: {} for m in modes}
        names = list(summary[modes[0]])
        for name in names:
            for m in modes:
                ratios[m][name] = summary[m][name]["py"]["rate"] / summary[m][name][other]["rate"]
            lines.append(_row([name, *(f"{ratios[m][name]:.2f}" for m in modes)]))
        lines.append(_row(["geometric mean", *(f"**{geometric_mean(list(ratios[m].values())):.2f}**"
                                               for m in modes)]))
    return "\n".join(lines)


def mode_table(summary_of_mode: dict, impls: list[str]) -> str:
    """One mode: total reads/s of each implementation, lxcfs-py's ratios and the daemons' CPU per read."""
    shown = [i for i in impls if any(i in by_impl for by_impl in summary_of_mode.values())]
    daemons = [i for i in shown if i != "kernel"]
    others = compared_with(shown)
    cols = ["file", *(f"{impl_label(i)} reads/s" for i in shown), *(f"py / {impl_label(o).removeprefix('lxcfs ')}"
                                                                     for o in others)]
    if daemons:
        cols.append("CPU µs/read " + " / ".join(impl_label(i).removeprefix("lxcfs ") for i in daemons))
    lines = _header(cols)
    for name, by_impl in summary_of_mode.items():
        row = [name, *(f"{by_impl[i]['rate']:,.0f}" for i in shown)]
        row += [f"{by_impl['py']['rate'] / by_impl[o]['rate']:.2f}" for o in others]
        if daemons:
            row.append(" / ".join("?" if by_impl[i]["cpu_us_per_op"] is None else f"{by_impl[i]['cpu_us_per_op']:.0f}"
                                  for i in daemons))
        lines.append(_row(row))
    return "\n".join(lines)


def size_warnings(samples: dict) -> list[str]:
    """Files whose size differs by more than 10% from lxcfs C's: the two are not doing the same work."""
    warnings = []
    for by_file in samples.values():
        for name, by_impl in by_file.items():
            if not by_impl.get("ref"):
                continue
            ref = statistics.median(s["max_bytes"] for s in by_impl["ref"])
            for impl, rounds in by_impl.items():
                size = statistics.median(s["max_bytes"] for s in rounds) if rounds else ref
                warning = f"{name}: {impl_label(impl)} returned {size:.0f} bytes, lxcfs C {ref:.0f}"
                if impl not in ("ref", "kernel") and abs(size - ref) > 0.1 * max(ref, 1) and warning not in warnings:
                    warnings.append(warning)
    return warnings


def late_warnings(samples: dict, warmup: float) -> list[str]:
    """Measurements in which a reader woke after its window had opened: it measured less of it."""
    warnings = []
    for mode, by_file in samples.items():
        for name, by_impl in by_file.items():
            late = max((s["late"] for rounds in by_impl.values() for s in rounds), default=0)
            if late > warmup:
                warnings.append(f"{mode_label(mode)}, {name}: a reader started {late:.2f} s late "
                                f"(after a {warmup:g} s warm-up)")
    return warnings
