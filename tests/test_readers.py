"""Benchmark readers: JSPLIB job-shop files and Brandimarte `.fjs` files (DESIGN §3 mapping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fresh_solver.errors import InputError
from fresh_solver.model import load_problem, read_fjs, read_jobshop

SHARED = Path(__file__).resolve().parents[2] / "shared"
BENCHMARKS = SHARED / "benchmarks"
BOUNDS_FILE = BENCHMARKS / "bounds.json"
needs_benchmarks = pytest.mark.skipif(
    not BOUNDS_FILE.is_file(),
    reason=f"shared benchmark instances not found at {BENCHMARKS} (expected beside the repo)",
)
BOUNDS = json.loads(BOUNDS_FILE.read_text()) if BOUNDS_FILE.is_file() else []


@needs_benchmarks
@pytest.mark.parametrize("entry", BOUNDS, ids=[e["name"] for e in BOUNDS])
def test_benchmark_loads_with_its_sizes(entry: dict) -> None:
    p = load_problem(BENCHMARKS / entry["file"])
    assert p.name == Path(entry["file"]).stem
    assert len(p.jobs) == entry["jobs"]
    assert len(p.machines) == entry["machines"]
    assert [m.id for m in p.machines] == [f"M{i}" for i in range(entry["machines"])]
    assert all(m.capacity == 1 for m in p.machines)
    used = {mode.machine for t in p.templates for task in t.tasks for mode in task.modes}
    assert used == {m.id for m in p.machines}  # README: all machines are used in these files
    assert [j.id for j in p.jobs] == [f"J{i}" for i in range(entry["jobs"])]
    assert [j.template for j in p.jobs] == [j.id for j in p.jobs]
    for template in p.templates:
        ids = [t.id for t in template.tasks]
        assert ids == [f"O{k}" for k in range(len(ids))]
        assert [(q.before, q.after, q.min_lag) for q in template.precedences] == [
            (a, b, 0) for a, b in zip(ids, ids[1:])]
    if entry["format"] == "jobshop":  # every job visits every machine exactly once
        for template in p.templates:
            assert sorted(t.modes[0].machine for t in template.tasks) == sorted(
                m.id for m in p.machines)
            assert all(len(t.modes) == 1 for t in template.tasks)


@needs_benchmarks
def test_ft06_first_job() -> None:
    p = load_problem(BENCHMARKS / "jobshop" / "ft06")
    job = p.jobs[0]
    assert job.id == "J0"
    assert job.template == "J0"
    template = p.template_of(job)
    assert [t.id for t in template.tasks] == [f"O{k}" for k in range(6)]
    first = template.tasks[0].modes[0]
    assert (first.machine, first.duration) == ("M2", 1)
    # '2 1 0 3 1 6 ...': then machine 0 for 3, machine 1 for 6
    assert [(t.modes[0].machine, t.modes[0].duration) for t in template.tasks[1:3]] == [
        ("M0", 3), ("M1", 6)]


@needs_benchmarks
def test_mk01_first_operation_is_zero_based() -> None:
    p = load_problem(BENCHMARKS / "fjsp" / "mk01.fjs")
    template = p.template_of(p.jobs[0])
    assert len(template.tasks) == 6
    assert [(m.machine, m.duration) for m in template.tasks[0].modes] == [("M0", 5), ("M2", 4)]
    # operation 2: machine 5 (3), 3 (5), 2 (1), 1-based in the file
    assert [(m.machine, m.duration) for m in template.tasks[1].modes] == [
        ("M4", 3), ("M2", 5), ("M1", 1)]


# --------------------------------------------------------------------------------------------
# Small texts


def test_jobshop_comments_and_whitespace() -> None:
    text = "# a comment\n#another\n 2   2 \n\t0 3  1 2 \n1 4 0 1\n\n"
    p = read_jobshop(text, name="tiny")
    assert p.name == "tiny"
    assert [[(t.modes[0].machine, t.modes[0].duration) for t in tp.tasks]
            for tp in p.templates] == [[("M0", 3), ("M1", 2)], [("M1", 4), ("M0", 1)]]


@pytest.mark.parametrize("header", ["2 3 1.5", "2\t3\t1.5", "2 3 2", "2 3"],
                         ids=["decimal", "tabs", "integer", "two-numbers"])
def test_fjs_header_third_number_may_be_decimal(header: str) -> None:
    text = f"{header}\n2 1 1 4 2 2 5 3 1\n1 1 3 7\n"
    p = read_fjs(text)
    assert len(p.machines) == 3 and len(p.jobs) == 2
    first = p.templates[0]
    assert [(m.machine, m.duration) for m in first.tasks[0].modes] == [("M0", 4)]
    assert [(m.machine, m.duration) for m in first.tasks[1].modes] == [("M1", 5), ("M2", 1)]
    assert [(m.machine, m.duration) for m in p.templates[1].tasks[0].modes] == [("M2", 7)]


def test_fjs_decimal_header_through_load_problem(tmp_path) -> None:
    path = tmp_path / "tiny.fjs"
    path.write_text("1\t2\t1.5\n2 2 1 3 2 4 1 2 2\n")
    p = load_problem(path)
    assert p.name == "tiny"
    assert [len(t.modes) for t in p.templates[0].tasks] == [2, 1]


JOBSHOP_BAD = [
    # (id, text, line the message must name, or None for the file only, fragment)
    ("header-one-number", "2\n0 1 1 1\n1 1 0 1\n", 1, "header"),
    ("header-zero-jobs", "0 2\n", 1, "header"),
    ("too-few-job-lines", "3 2\n0 1 1 1\n1 1 0 1\n", None, "3 jobs"),
    ("too-many-job-lines", "1 2\n0 1 1 1\n1 1 0 1\n", None, "1 jobs"),
    ("odd-token-count", "2 2\n0 1 1\n1 1 0 1\n", 2, "pairs"),
    ("machine-out-of-range", "2 2\n0 1 2 1\n1 1 0 1\n", 2, "machine 2"),
    ("negative-machine", "2 2\n0 1 1 1\n-1 1 0 1\n", 3, "machine -1"),
    ("non-integer-duration", "2 2\n0 1 1 1.5\n1 1 0 1\n", 2, "'1.5'"),
    ("non-integer-header", "2 x\n0 1 1 1\n1 1 0 1\n", 1, "'x'"),
    ("comment-shifts-lines", "# c\n2 2\n0 1 1 1\n1 a 0 1\n", 4, "'a'"),
]


FJS_BAD = [
    ("header-one-number", "2\n1 1 1 1\n1 1 1 1\n", 1, "header"),
    ("header-decimal-jobs", "2.5 2 1\n1 1 1 1\n1 1 1 1\n", 1, "'2.5'"),
    ("too-few-job-lines", "3 2 1\n1 1 1 1\n1 1 1 1\n", None, "3 jobs"),
    ("machine-zero", "2 2 1\n1 1 0 4\n1 1 1 1\n", 2, "machine 0"),
    ("machine-above-count", "2 2 1\n1 1 1 4\n1 1 3 1\n", 3, "machine 3"),
    ("operations-short", "2 2 1\n2 1 1 4\n1 1 1 1\n", 2, "does not match"),
    ("pair-missing", "2 2 1\n1 2 1 4 2\n1 1 1 1\n", 2, "does not match"),
    ("zero-machines-for-op", "2 2 1\n1 0\n1 1 1 1\n", 2, "does not match"),
    ("numbers-left-over", "2 2 1\n1 1 1 4 7\n1 1 1 1\n", 2, "left over"),
    ("non-integer-duration", "2 2 1\n1 1 1 4.5\n1 1 1 1\n", 2, "'4.5'"),
]


BAD_TEXT = [("bad", *c) for c in JOBSHOP_BAD] + [("bad.fjs", *c) for c in FJS_BAD]


@pytest.mark.parametrize(("file_name", "text", "line", "fragment"),
                         [(c[0], *c[2:]) for c in BAD_TEXT],
                         ids=[f"{'fjs' if c[0].endswith('.fjs') else 'jobshop'}-{c[1]}"
                              for c in BAD_TEXT])
def test_bad_benchmark_text(tmp_path, file_name: str, text: str, line: int | None,
                            fragment: str) -> None:
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_problem(path)
    (message,) = info.value.problems
    where = f"{path}:{line}:" if line else f"{path}:"
    assert message.startswith(where), message
    assert fragment in message


@pytest.mark.parametrize("line", ["0 3", "0 3 1 1 0 2"], ids=["short", "long"])
def test_jobshop_line_with_wrong_pair_count_is_refused(line: str) -> None:
    with pytest.raises(InputError, match=r"<jobshop>:3:"):
        read_jobshop(f"2 2\n0 1 1 2\n{line}\n")


def test_empty_files(tmp_path) -> None:
    for name in ("empty", "empty.fjs"):
        path = tmp_path / name
        path.write_text("\n  \n")
        with pytest.raises(InputError, match="empty"):
            load_problem(path)


def test_binary_file_is_input_error(tmp_path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(InputError):
        load_problem(path)
