"""The two UIs clicked as their users click them (headless Debian Chromium).

A reviewer promotes in the real MLflow UI and fresh-solver serves it: the default UI's alias
editor is clicked through (version page → "Add" aliases → type `production` → "Save aliases");
the stage dropdown path is covered by the REST tests. A platform team starts retunes from
Airflow's real trigger form: with every default, on a folder of instances and on generated
instances.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from fresh_solver import devstack
from tests.servers import using_mlflow_server
from tests.test_registry_server import passed_version

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                       reason="Debian's chromium and chromium-driver are not installed "
                              "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The closed network here refuses Chromium's background connections: switch them off.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                f"--user-data-dir={tempfile.mkdtemp(prefix='fresh-solver-chromium-')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_reviewer_adds_the_production_alias_in_the_ui(tmp_path: Path, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fresh_solver.registry.registry import ParameterRegistry, model_name

    with using_mlflow_server(tmp_path) as url:
        registry = ParameterRegistry()
        v1, v2 = passed_version(registry, "ui", 1), passed_version(registry, "ui", 2)
        registry.promote("ui", v1, "alice")

        from fresh_solver.tracking import ui_link

        # The UI opens in GenAI mode: no Models in the sidebar until the reviewer switches to
        # "Model training" (what the README says); the links the project prints go straight
        # to the registry's pages either way.
        browser.get(ui_link(url))
        assert browser.find_element(By.LINK_TEXT, model_name("ui")).is_displayed()
        sidebar = [a.text.strip() for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
        assert "Models" not in sidebar and "Experiments" in sidebar
        assert browser.find_element(By.XPATH, "//*[normalize-space()='Model training']")
        browser.get(ui_link(url, f"/models/{model_name('ui')}/versions/{v2}"))
        try:
            browser.find_element(By.CSS_SELECTOR, "button[title='Add aliases']").click()
            field = browser.find_element(By.CSS_SELECTOR, "[role='dialog'] input")
            field.send_keys("production", Keys.ENTER)
            browser.find_element(
                By.CSS_SELECTOR,
                "button[data-component-id='mlflow.edit-aliases-modal.save-button']").click()
            deadline = time.monotonic() + 30
            while registry.alias_version("ui") != v2 and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            browser.save_screenshot(str(tmp_path / "ui.png"))  # kept for a failing run

        assert registry.alias_version("ui") == v2, f"see {tmp_path / 'ui.png'}"
        decision = registry.serving("ui")
        assert (decision.version, decision.path) == (v2, "alias")
        assert registry.reconcile("ui")["changed"] is True
        assert [v.version for v in registry.versions("ui")
                if v.current_stage == "Production"] == [v2]
        assert registry.history("ui")[-1]["path"] == "ui-alias"


RETUNE = "fresh_solver_retune"
# A tiny budget typed into the form (the wiring is under test): one round of two short trials.
TINY_FORM = {"trials": 2, "batch_size": 2, "trial_time_limit": 0.2, "race": 0,
             "train_instances": 2, "held_out_instances": 2, "validation_time_limit": 0.3}


def log_in(browser, url: str, home: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{url}/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(devstack.airflow_password(home),
                                                         Keys.ENTER)
    browser.find_element(By.XPATH, "//*[normalize-space()='Dags']")  # the home page is up


def trigger_from_the_form(browser, url: str, typed: dict) -> None:
    """Open the DAG's Trigger form, type ``typed`` into its fields (each selected and typed
    over, as a user does), click the form's Trigger button."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{url}/dags/{RETUNE}")
    browser.find_element(By.XPATH, "//button[normalize-space()='Trigger']").click()
    browser.find_element(By.NAME, "element_template_id")  # the form is open
    for name, value in typed.items():
        field = browser.find_element(By.NAME, f"element_{name}")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(str(value))
    submit = browser.find_element(By.XPATH,
                                  "//*[@role='dialog']//button[normalize-space()='Trigger']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", submit)
    assert submit.is_enabled(), "the form's Trigger button is disabled"
    submit.click()


def test_retunes_start_from_airflows_trigger_form(tmp_path: Path, browser) -> None:
    """Airflow's form once marked every param required and kept Trigger disabled while the
    instances folder or the space was empty (their defaults): no retune on generated instances
    and none with all the defaults could start from the UI."""
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    folder = tmp_path / "instances"
    folder.mkdir()
    for seed in range(4):
        problem = generate_family("small", 3, seed, template_id="folder")
        (folder / f"{problem.name}.json").write_text(json.dumps(problem_to_dict(problem)))
    # The scheduled run's list (what "all defaults", template '*', retunes): one template, on
    # the folder, at the tiny budget.
    listed = tmp_path / "retune_templates.toml"
    listed.write_text("[[retune]]\ntemplate_id = \"folder\"\n"
                      f"instances_folder = \"{folder}\"\n"
                      + "".join(f"{k} = {v}\n" for k, v in TINY_FORM.items()))
    home = tmp_path / "home"
    service = devstack.start_airflow(home, ROOT / "dags", devstack.free_port(), env_extra={
        "FRESH_SOLVER_RETUNE_SCHEDULE": "none", "FRESH_SOLVER_RETUNE_ROUNDS": "1",
        "FRESH_SOLVER_RETRY_DELAY_S": "1", "FRESH_SOLVER_RETUNE_TEMPLATES": str(listed)})
    try:
        api = devstack.AirflowAPI(service.url, "admin", devstack.airflow_password(home))
        api.wait_for_dag(RETUNE, timeout=120)
        log_in(browser, service.url, home)
        try:
            trigger_from_the_form(browser, service.url, {})  # every default: template '*'
            trigger_from_the_form(browser, service.url, {"template_id": "generated",
                                                         **TINY_FORM})
        finally:
            browser.save_screenshot(str(tmp_path / "trigger.png"))  # kept for a failing run
        deadline = time.monotonic() + 60
        while len(api.dag_runs(RETUNE)) < 3 and time.monotonic() < deadline:
            time.sleep(1)  # the '*' run starts the folder's run itself
        runs = {run["conf"]["template_id"]: run for run in api.dag_runs(RETUNE)}
        assert set(runs) == {"*", "folder", "generated"}, f"see {tmp_path / 'trigger.png'}"
        assert runs["*"]["run_type"] == runs["generated"]["run_type"] == "manual"
        assert runs["generated"]["conf"]["instances_folder"] in ("", None)
        for template_id, run in runs.items():
            assert api.wait(RETUNE, run["dag_run_id"], timeout=300) == "success", template_id
        for template_id in ("folder", "generated"):
            notified = api.xcom(RETUNE, runs[template_id]["dag_run_id"], "notify")
            assert f"retune of template {template_id!r}" in notified["message"]
    finally:
        devstack.stop(service, timeout=5)
