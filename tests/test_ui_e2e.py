"""A reviewer promotes in the real MLflow UI (headless Debian Chromium), fresh-solver serves it.

The default UI's alias editor is clicked through: version page → "Add" aliases → type
`production` → "Save aliases". The stage dropdown path is covered by the REST tests.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.servers import using_mlflow_server
from tests.test_registry_server import passed_version

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
