"""The project's experiments: the benchmark commands behind the README's figures.

Each module with a ``main`` is run from the checkout as ``python -m benchmarks.<name>``; most
write ``results.json`` and ``report.md`` under ``--out DIR`` with the command that reruns them
(``record``).
They sit outside the ``fresh_solver`` package (not in its wheel): library code never imports
them; they import the library. ``faults`` (servers that misbehave on purpose) is shared with
the fault-injection tests; ``spaces/`` holds search spaces that screens wrote.
"""
