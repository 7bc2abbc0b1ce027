"""Load a problem from a file: problem-v1 JSON, a JSPLIB job-shop file, or a `.fjs` file.

Benchmark mapping (DESIGN §3): job ``i`` becomes template ``J<i>`` with one job ``J<i>``; its
``k``-th operation is task ``O<k>``; machine ``m`` is ``M<m>``, 0-based in both formats (an
`.fjs` file's machine 1 is ``M0``). Operations form a chain.
"""

from __future__ import annotations

import json
from pathlib import Path

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_text
from fresh_solver.model.problem import FORMAT, Problem, problem_from_dict


def load_problem(path: str | Path) -> Problem:
    """Read any supported format, chosen by extension and then by content."""
    path = Path(path)
    text = read_text(path)
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: malformed JSON: {exc}") from None
        try:
            return problem_from_dict(data)
        except InputError as exc:
            raise InputError([f"{path}: {p}" for p in exc.problems]) from None
    if path.suffix == ".fjs":
        return read_fjs(text, name=path.stem, source=str(path))
    return read_jobshop(text, name=path.stem, source=str(path))


def _numbers(line: str, source: str, lineno: int, *, allow_float_at: int | None = None) -> list:
    out = []
    for i, token in enumerate(line.split()):
        try:
            out.append(int(token))
        except ValueError:
            if i == allow_float_at:
                try:
                    out.append(float(token))
                    continue
                except ValueError:
                    pass
            raise InputError(f"{source}:{lineno}: expected an integer, got {token!r}") from None
    return out


def _benchmark_problem(name: str, n_machines: int, jobs: list[list[list[tuple[int, int]]]]):
    """jobs[i][k] lists the (machine, duration) alternatives of operation k of job i."""
    return problem_from_dict({
        "format": FORMAT,
        "name": name,
        "machines": [{"id": f"M{m}"} for m in range(n_machines)],
        "templates": [
            {"id": f"J{i}", "tasks": [
                {"id": f"O{k}", "modes": [{"machine": f"M{m}", "duration": d} for m, d in op]}
                for k, op in enumerate(ops)
            ]}
            for i, ops in enumerate(jobs)
        ],
        "jobs": [{"id": f"J{i}", "template": f"J{i}"} for i in range(len(jobs))],
    })


def read_jobshop(text: str, name: str = "jobshop", source: str = "<jobshop>") -> Problem:
    """JSPLIB: '#' comments, then 'jobs machines', then per job 'm0 p0 m1 p1 ...' (0-based)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{source}: empty job-shop file")
    header = _numbers(lines[0][1], source, lines[0][0])
    if len(header) != 2 or min(header) < 1:
        raise InputError(f"{source}:{lines[0][0]}: header must be '<jobs> <machines>'")
    n_jobs, n_machines = header
    if len(lines) - 1 != n_jobs:
        raise InputError(f"{source}: header says {n_jobs} jobs, found {len(lines) - 1} job lines")
    jobs = []
    for lineno, line in lines[1:]:
        values = _numbers(line, source, lineno)
        if len(values) != 2 * n_machines:
            raise InputError(f"{source}:{lineno}: expected {n_machines} 'machine duration' "
                             f"pairs (one per machine), got {len(values) / 2:g}")
        ops = []
        for m, d in zip(values[::2], values[1::2]):
            if not 0 <= m < n_machines:
                raise InputError(f"{source}:{lineno}: machine {m} outside 0..{n_machines - 1}")
            if d < 0:
                raise InputError(f"{source}:{lineno}: negative duration {d}")
            ops.append([(m, d)])
        jobs.append(ops)
    return _benchmark_problem(name, n_machines, jobs)


def read_fjs(text: str, name: str = "fjsp", source: str = "<fjs>") -> Problem:
    """Brandimarte `.fjs`: 'jobs machines avg', then per job 'n_ops {k (m p)*k}*' (1-based)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise InputError(f"{source}: empty .fjs file")
    header = _numbers(lines[0][1], source, lines[0][0], allow_float_at=2)
    if len(header) < 2 or min(header[:2]) < 1:
        raise InputError(f"{source}:{lines[0][0]}: header must be '<jobs> <machines> [<avg>]'")
    n_jobs, n_machines = header[0], header[1]
    if len(lines) - 1 < n_jobs:
        raise InputError(f"{source}: header says {n_jobs} jobs, found {len(lines) - 1} job lines")
    jobs = []
    for lineno, line in lines[1:n_jobs + 1]:
        values = _numbers(line, source, lineno)
        pos, ops = 1, []
        try:
            for _ in range(values[0]):
                k = values[pos]
                pairs = values[pos + 1:pos + 1 + 2 * k]
                if k < 1 or len(pairs) != 2 * k:
                    raise IndexError
                op = []
                for m, d in zip(pairs[::2], pairs[1::2]):
                    if not 1 <= m <= n_machines:
                        raise InputError(
                            f"{source}:{lineno}: machine {m} outside 1..{n_machines}")
                    if d < 0:
                        raise InputError(f"{source}:{lineno}: negative duration {d}")
                    op.append((m - 1, d))
                ops.append(op)
                pos += 1 + 2 * k
        except IndexError:
            raise InputError(f"{source}:{lineno}: operation list does not match its counts")\
                from None
        if pos != len(values):
            raise InputError(f"{source}:{lineno}: {len(values) - pos} numbers left over")
        jobs.append(ops)
    return _benchmark_problem(name, n_machines, jobs)
