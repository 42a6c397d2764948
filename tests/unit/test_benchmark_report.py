"""The benchmark's arithmetic: N readers summed, CPU per read over every read served, medians, ratios."""

import pytest

from benchmarks import report, run
from lxcfs_py.served_files import SERVED_FILES
from tests.live.daemons import LXCFS_REF_PASSES_THROUGH


def reader(rate, ops=100, warmup_ops=20, max_bytes=1500, late=0.0):
    return {"ops": ops, "elapsed": ops / rate, "rate": rate, "min_bytes": max_bytes, "max_bytes": max_bytes,
            "warmup_ops": warmup_ops, "late": late}


def test_a_result_line_is_parsed_and_an_error_raised():
    line = "/lx-py/proc/meminfo 4000 1.000250 3999.0 1503 1503 812 0.001500"
    assert report.parse_result(line) == {"ops": 4000, "elapsed": 1.00025, "rate": 3999.0, "min_bytes": 1503,
                                         "max_bytes": 1503, "warmup_ops": 812, "late": 0.0015}
    with pytest.raises(RuntimeError, match="open /lx-py/proc/meminfo: Transport endpoint is not connected"):
        report.parse_result("error open /lx-py/proc/meminfo: Transport endpoint is not connected")


def test_readers_at_once_are_summed_and_cpu_is_per_read_served_warm_up_included():
    sample = report.combine([reader(1000, ops=1000, warmup_ops=200), reader(3000, ops=3000, warmup_ops=600,
                                                                            late=0.01)], 0.96)
    assert (sample["rate"], sample["ops"], sample["late"]) == (4000, 4000, 0.01)
    assert sample["cpu_us_per_op"] == pytest.approx(200)  # 0.96 s over 4800 reads
    assert "cpu_us_per_op" not in report.combine([reader(1000)], None)  # the kernel: no daemon


def test_medians_over_rounds_and_the_ratio_table():
    rounds = {"py": [{"rate": r, "cpu_us_per_op": c} for r, c in ((4000, 100), (1000, 300), (3000, 200))],
              "ref": [{"rate": r, "cpu_us_per_op": 250} for r in (1000, 2000, 1500)]}
    samples = {"pinned": {"meminfo": rounds, "stat": rounds}, "8": {"meminfo": rounds, "stat": rounds}}
    summary = report.summarize(samples)
    assert summary["8"]["meminfo"]["py"] == {"rate": 3000, "cpu_us_per_op": 200}
    table = report.ratio_table(summary, ["pinned", "8"], ["py", "ref", "kernel"])
    assert table.splitlines()[0] == "| reads/s, lxcfs-py / lxcfs C | 1 reader, pinned | 8 readers |"
    assert "| meminfo | 2.00 | 2.00 |" in table and "| geometric mean | **2.00** | **2.00** |" in table
    assert "| meminfo | 3,000 | 1,500 | 2.00 | 200 / 250 |" in report.mode_table(summary["8"], ["py", "ref", "kernel"])


def test_geometric_mean():
    assert report.geometric_mean([1.0, 4.0]) == pytest.approx(2.0)


def test_each_round_starts_with_another_implementation_and_the_kernel_only_for_one_reader():
    impls = ["py", "ref", "kernel"]
    assert [run.impls_of_round(impls, "1", r) for r in range(3)] == [
        ["py", "ref", "kernel"], ["ref", "kernel", "py"], ["kernel", "py", "ref"]]
    assert run.impls_of_round(impls, "pinned", 0) == impls
    assert [run.impls_of_round(impls, "8", r) for r in range(2)] == [["py", "ref"], ["ref", "py"]]


def test_the_benchmark_reads_every_file_both_daemons_virtualize():
    assert run.FILES["meminfo"] == "proc/meminfo" and run.FILES["cpu/online"] == "sys/devices/system/cpu/online"
    assert set(run.FILES.values()) == set(SERVED_FILES) - LXCFS_REF_PASSES_THROUGH
    assert "cpu/possible" not in run.FILES  # LXCFS C passes it through from the host
