"""The web dashboard in Debian's headless Chromium at 1280x800, against a facade served over HTTP: a user signs
in and sees their budget drop after a query, an admin locks a queue, a user cannot see another's queries.
Each page is saved as a screenshot into $DPKUBE_ARTIFACTS (default build/screenshots)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.k8s.tokens import create_token
from dpkube.models import examples
from dpkube.models.kinds import QUEUE
from dpkube_testing.builders import queue
from dpkube_testing.served import served_facade, served_settings

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 800)
WAIT_SECONDS = 30.0

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="Debian's chromium and chromium-driver are not installed (make prereqs)")


def artefacts() -> Path:
    folder = Path(os.environ.get("DPKUBE_ARTIFACTS", "build/screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven by Debian's chromedriver (Selenium Manager never downloads anything)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def facade(namespace: str, system_namespace: str, control_plane) -> Iterator[str]:
    with served_facade(served_settings(namespace, system_namespace, str(control_plane.kubeconfig))) as url:
        yield url


@pytest.fixture
def new_user(admin: KubeClient, system_namespace: str) -> Callable[..., object]:
    """A user with a PENGUIN budget of 10 / 0.005 and an API token: (name, token)."""

    async def make(*, admin_user: bool = False) -> tuple[str, str]:
        name = f"ui-{uuid.uuid4().hex[:8]}"
        await Budgets(admin, system_namespace).grant(name, "PENGUIN", 10.0, 0.005)
        return name, await create_token(admin, system_namespace, name, admin=admin_user)

    return make


def screenshot(driver: WebDriver, name: str) -> Path:
    path = artefacts() / f"{name}.png"
    assert driver.save_screenshot(str(path))
    return path


def sign_in(driver: WebDriver, url: str, token: str) -> None:
    driver.get(f"{url}/ui")
    assert driver.current_url.endswith("/ui/login")
    driver.find_element(By.ID, "token").send_keys(token)
    click_and_load(driver, driver.find_element(By.ID, "sign-in"))
    assert driver.current_url == f"{url}/ui"


def click_and_load(driver: WebDriver, element: WebElement) -> None:
    """Click a link or a form's button, then wait for the page it leads to: on a loaded machine the click
    may return before the next page has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, WAIT_SECONDS).until(lambda _: replaced(page))


def replaced(page: WebElement) -> bool:
    """The page is gone from the browser: stale, or (mid-navigation) no longer in any document."""
    try:
        page.is_enabled()
    except WebDriverException:  # StaleElementReferenceException, or Chrome's "does not belong to the document"
        return True
    return False


def eventually(check: Callable[[], bool], driver: WebDriver, seconds: float = WAIT_SECONDS) -> None:
    """Reload the page until `check` holds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the page never showed it"
        time.sleep(0.5)
        driver.refresh()


def remaining(driver: WebDriver) -> float:
    return float(driver.find_element(By.CSS_SELECTOR, 'tr.budget[data-dataset="PENGUIN"] td.remaining').text)


@pytest.mark.slow
async def test_a_user_signs_in_and_sees_the_budget_drop_after_a_query(browser, facade, new_user, operator_process,
                                                                       node_agent) -> None:
    name, token = await new_user()
    browser.get(f"{facade}/ui/login")
    screenshot(browser, "login")
    sign_in(browser, facade, token)
    assert browser.find_element(By.ID, "who").text == name
    assert remaining(browser) == 10.0
    response = httpx.post(f"{facade}/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                          headers={"Authorization": f"Bearer {token}"}, timeout=180)
    assert response.status_code == 200, response.text
    eventually(lambda: remaining(browser) < 10.0, browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.query")
    assert len(rows) == 1 and "Succeeded" in rows[0].text
    screenshot(browser, "dashboard")
    click_and_load(browser, rows[0].find_element(By.LINK_TEXT, "JSON"))
    assert '"spent_epsilon"' in browser.find_element(By.TAG_NAME, "body").text


async def test_an_admin_locks_a_queue_from_the_admin_page(browser, facade, new_user, admin: KubeClient,
                                                          system_namespace: str) -> None:
    _, token = await new_user(admin_user=True)
    queue_name = f"ui-{uuid.uuid4().hex[:8]}"
    await admin.create(QUEUE.api_path(system_namespace), queue(queue_name))
    try:
        sign_in(browser, facade, token)
        click_and_load(browser, browser.find_element(By.ID, "admin-link"))
        row = f'tr.queue[data-queue="{queue_name}"]'
        click_and_load(browser, browser.find_element(By.CSS_SELECTOR, f"{row} button.lock"))
        assert browser.find_element(By.CSS_SELECTOR, f"{row} td.state").text == "locked"
        assert (await admin.get(QUEUE.api_path(system_namespace, queue_name)))["spec"]["locked"] is True
        screenshot(browser, "admin")
    finally:
        await admin.delete(QUEUE.api_path(system_namespace, queue_name))


async def test_a_user_cannot_see_another_users_queries(browser, facade, new_user) -> None:
    _, token = await new_user()
    _, other_token = await new_user()
    submitted = httpx.post(f"{facade}/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                           headers={"Authorization": f"Bearer {other_token}", "Prefer": "respond-async"})
    other_query = submitted.json()["name"]
    sign_in(browser, facade, token)
    assert other_query not in browser.page_source
    assert browser.find_elements(By.CSS_SELECTOR, "tr.query") == []
    screenshot(browser, "dashboard-empty")
    browser.get(f"{facade}/ui/queries/{other_query}")
    assert "does not exist" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{facade}/ui/admin")
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    screenshot(browser, "admin-forbidden")
