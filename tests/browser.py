"""A headless Chromium for the tests that look at pages in a real browser (the served page, the evaluation report)."""
import os

import pytest


def chromium():
    """A headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, or skip saying why; where
    PADDLE_CLS_REQUIRE_BROWSER is set (CI installs them) a missing browser fails the test instead."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    binary = next((path for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(path)), None)
    driver = next((path for path in ("/usr/bin/chromedriver",) if os.path.exists(path)), None)
    if binary is None or driver is None:
        missing = "Chromium and its driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("PADDLE_CLS_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)
