"""The MLflow vocabulary (fresh_solver.tracking.names): the filters it writes find exactly the
runs the code tagged, values with quotes included, on the embedded store."""

from __future__ import annotations

import pytest

from fresh_solver import tracking
from fresh_solver.errors import InputError
from fresh_solver.tracking import names


@pytest.fixture(scope="module")
def runs():
    client = tracking.client()
    experiment = tracking.experiment_id(client, "names-test")
    tagged = {}
    for template_id, kind in [("it's", names.BENCHMARK), ("its", names.BENCHMARK),
                              ("it's", names.BASELINE)]:
        run = client.create_run(experiment, tags={names.KIND: kind,
                                                  names.TEMPLATE_ID: template_id})
        client.log_param(run.info.run_id, "configuration", "it's production")
        tagged[(template_id, kind)] = run.info.run_id
    client.set_terminated(tagged[("it's", names.BENCHMARK)])
    return client, experiment, tagged


def found(runs, where: str) -> set[str]:
    client, experiment, _ = runs
    return {r.info.run_id for r in client.search_runs([experiment], where)}


def test_tags_match_exactly_a_quote_included(runs) -> None:
    _, _, tagged = runs
    where = names.runs_where({names.KIND: names.BENCHMARK, names.TEMPLATE_ID: "it's"})
    assert found(runs, where) == {tagged[("it's", names.BENCHMARK)]}


def test_params_and_finished(runs) -> None:
    _, _, tagged = runs
    assert found(runs, names.runs_where({names.TEMPLATE_ID: "it's"},
                                        {"configuration": "it's production"})) == \
        {tagged[("it's", names.BENCHMARK)], tagged[("it's", names.BASELINE)]}
    assert found(runs, names.runs_where({names.TEMPLATE_ID: "it's"}, finished=True)) == \
        {tagged[("it's", names.BENCHMARK)]}


def test_a_value_with_both_quotes_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="both kinds of quote"):
        names.runs_where({names.TEMPLATE_ID: """it's "x"""})


def test_no_tag_key_is_spelled_out_outside_the_vocabulary() -> None:
    """Every ``fresh_solver.*`` tag key the library writes or queries comes from names, so a
    key cannot be renamed in one place and not in another (loggers share the prefix: they are
    not tag keys)."""
    import re
    from pathlib import Path

    keys = {value for value in vars(names).values()
            if isinstance(value, str) and value.startswith("fresh_solver.")}
    package = Path(tracking.__file__).parents[1]
    spelled = [f"{path.relative_to(package)}: {key}"
               for path in sorted(package.rglob("*.py")) if path.name != "names.py"
               for key in keys
               if re.search(r"""["']""" + re.escape(key) + r"""["']""", path.read_text())]
    assert spelled == []
