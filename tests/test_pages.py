"""The built-in web pages in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium, nothing downloaded), against `serve` over a generated store plus a
hostile message. Screenshots of every page land in test-artifacts/screenshots/."""
from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from service import ROOT, Service, free_port, http_get

from datasource_api import pages
from datasource_api.access import token_ok
from exporter.generator import generate

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = ROOT / "test-artifacts" / "screenshots"
VENDOR = ROOT / "datasource_api" / "static" / "vendor" / "uPlot.iife.min.js"

HOSTILE_QID = "9F8E7D6C5B"
HOSTILE_SUBJECT = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
HOSTILE_REPLY = "550 5.7.1 <b onmouseover=window.__pwned=3>go away</b>"


def _need(ok: bool, why: str) -> None:
    """Missing browser pieces skip locally but fail in CI, where the setup installs them."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _hostile_log(t: datetime) -> str:
    def ts(s: int) -> str:
        return (t + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.000000+00:00")
    q = HOSTILE_QID
    # postscreen noise first: the follower reads a file only once it holds more than 1024 bytes
    noise = [f"{ts(0)} mx1 postfix/postscreen[938]: CONNECT from [192.0.2.49]:{51200 + i} to [192.0.2.11]:25"
             for i in range(12)]
    return "\n".join([*noise,
        f"{ts(0)} mx1 postfix/smtpd[9601]: {q}: client=evil.example[203.0.113.66]",
        f"{ts(0)} mx1 postfix/cleanup[9602]: {q}: message-id=<evil@evil.example>",
        (f"{ts(0)} mx1 postfix/cleanup[9602]: {q}: info: header Subject: {HOSTILE_SUBJECT} from "
         "evil.example[203.0.113.66]; from=<mallory@evil.example> to=<victim@example.org> proto=ESMTP helo=<evil.example>"),
        f"{ts(0)} mx1 postfix/qmgr[1000]: {q}: from=<mallory@evil.example>, size=666, nrcpt=1 (queue active)",
        (f"{ts(1)} mx1 postfix/smtp[9603]: {q}: to=<victim@example.org>, relay=mx.example.org[192.0.2.10]:25, "
         f"delay=1, delays=0.1/0/0.4/0.5, dsn=5.7.1, status=bounced (host mx.example.org[192.0.2.10] said: "
         f"{HOSTILE_REPLY} (in reply to end of DATA command))"),
        f"{ts(1)} mx1 postfix/qmgr[1000]: {q}: removed",
    ]) + "\n"


class Site:
    def __init__(self, service: Service, start: datetime) -> None:
        self.service, self.url = service, service.url
        # the whole generated range, as the stats page and the search take it
        self.range = {"from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "to": (start + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def api(self, path: str, **params: str) -> dict:
        status, body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert status == 200, body
        return json.loads(body)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    stats = generate(tmp / "demo.log", 20_000, seed=7, start=start, hosts=("mx1", "mx2"),
                     timestamp_format="rfc3339", messages_per_second=0.02)
    (tmp / "hostile.log").write_text(_hostile_log(start + timedelta(hours=1)))
    service = Service(tmp, tmp / "store.duckdb", ["--log", str(tmp / "demo.log"), "--log", str(tmp / "hostile.log")])
    try:
        service.wait_idle(stats.lines + len(_hostile_log(start).splitlines()))
        yield Site(service, start)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    _need(CHROMIUM.exists() and CHROMEDRIVER.exists(),
          "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    _need(VENDOR.exists(), "uPlot not vendored: run `npm --prefix webui ci && npm --prefix webui run build`")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                "--force-device-scale-factor=1", "--lang=en-US", "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                # only loopback: any other host name fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, cond: Callable[[WebDriver], Any], timeout: float = 20) -> Any:
    return WebDriverWait(driver, timeout).until(cond)


def css(driver: WebDriver, selector: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def console_errors(driver: WebDriver) -> list[str]:
    """Console errors since the last call: script errors, CSP violations, failed loads."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page: the window is stretched to the document's height for the shot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], min(max(height + 120, 600), 8000))
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
    assert path.stat().st_size > 10_000
    return path


def rows_loaded(driver: WebDriver) -> bool:
    summary = css(driver, "#summary")
    return bool(summary) and summary[0].text not in ("", "Searching…")


def pick_domain(site: Site) -> str:
    """A remote domain with some non-delivered mail and more than one page of 5 records."""
    rows = site.api("stats/domains", **site.range, limit="50")["items"]
    remote = [r for r in rows if not r["domain"].startswith(("example.", "mx")) and r["records"] > 6]
    troubled = [r for r in remote if r["deferred"] or r["bounced"]]
    return (troubled or remote)[0]["domain"]


def test_search_by_domain_then_trace(site: Site, browser: WebDriver) -> None:
    domain = pick_domain(site)
    browser.get(site.url + "/")
    wait(browser, rows_loaded)
    assert css(browser, "#results tbody tr"), "the landing page lists the latest deliveries"
    box = browser.find_element(By.NAME, "domain")
    box.send_keys(domain)
    browser.find_element(By.NAME, "from").send_keys(site.range["from"])
    browser.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    wait(browser, lambda d: f"domain={domain}" in d.current_url and rows_loaded(d))
    assert "recipient=" not in browser.current_url, "empty fields stay out of the URL"
    assert browser.find_element(By.NAME, "domain").get_attribute("value") == domain, "the form is filled from the URL"

    rows = css(browser, "#results tbody tr")
    expected = site.api("messages", domain=domain, **{"from": site.range["from"]})["items"]
    assert len(rows) == len(expected) > 0
    recipients = [r.find_elements(By.TAG_NAME, "td")[4].text.split("\n")[0] for r in rows]
    assert all(r.endswith("@" + domain) for r in recipients), recipients
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == [e["queue_id"] or "—" for e in expected]
    badges = css(browser, "#results .badge")
    assert {b.get_attribute("class") for b in badges} >= {"badge st-sent"}
    assert console_errors(browser) == []
    screenshot(browser, "search")

    link = css(browser, "#results tbody td a[href^='/messages/']")[0]
    qid = link.text
    host = urllib.parse.parse_qs(urllib.parse.urlparse(link.get_attribute("href")).query)["host"][0]
    link.click()
    wait(browser, lambda d: css(d, ".lines li"))
    assert urllib.parse.urlparse(browser.current_url).path == f"/messages/{qid}"
    trace = site.api(f"messages/{qid}", host=host)["items"]
    shown = [li.text for li in css(browser, ".instance")[0].find_elements(By.CSS_SELECTOR, ".lines li")]
    assert shown == [line["line"] for line in trace[0]["lines"]], "every raw line, in order"
    assert any(qid in line for line in shown)
    recipients_shown = [e.text for e in css(browser, ".instance")[0].find_elements(By.CSS_SELECTOR, ".recipient .head strong")]
    own = [r["recipient"] for r in trace[0]["recipients"] if r["queue_id"] in (qid, None)]
    linked = [r["recipient"] for r in trace[0]["recipients"] if r["queue_id"] not in (qid, None)]
    assert recipients_shown == own + linked, "this message's recipients first, then linked queue IDs'"
    attempts = css(browser, ".instance")[0].find_elements(By.CSS_SELECTOR, "table.attempts tbody tr")
    assert len(attempts) == sum(len(r["attempts"]) for r in trace[0]["recipients"])
    assert console_errors(browser) == []
    screenshot(browser, "trace")


def test_trace_links_bounce_notice(site: Site, browser: WebDriver) -> None:
    """A bounced message links to its bounce notice's queue ID, and the link opens that trace."""
    bounced = site.api("messages", status="bounced", **site.range, limit="50")["items"]
    for rec in bounced:
        inst = site.api(f"messages/{rec['queue_id']}", host=rec["host"])["items"][0]
        child = next((link["child_queue_id"] for link in inst["links"] if link["child_queue_id"]
                      and link["child_queue_id"] != rec["queue_id"]), None)
        if child:
            break
    else:
        pytest.skip("no bounce with a linked notice in this corpus")
    browser.get(f"{site.url}/messages/{rec['queue_id']}?host={rec['host']}")
    wait(browser, lambda d: css(d, ".links a"))
    link = next(a for a in css(browser, ".links a") if a.text == child)
    heading = next(h for h in css(browser, "h3.linked-recipients") if child in h.text)
    assert "child" in heading.text
    screenshot(browser, "trace-bounce")
    link.click()
    wait(browser, lambda d: css(d, ".lines li") and urllib.parse.urlparse(d.current_url).path == f"/messages/{child}")
    assert any(child in li.text for li in css(browser, ".lines li"))
    assert browser.find_element(By.ID, "trace-qid").text == child
    assert console_errors(browser) == []


def test_paging_by_cursor(site: Site, browser: WebDriver) -> None:
    domain = pick_domain(site)
    browser.get(f"{site.url}/?domain={domain}&limit=5")
    wait(browser, rows_loaded)
    first = [r.text for r in css(browser, "#results tbody tr")]
    assert len(first) == 5
    nxt = browser.find_element(By.ID, "next-page")
    assert nxt.is_displayed()
    nxt.click()
    wait(browser, lambda d: "cursor=" in d.current_url and rows_loaded(d))
    second = [r.text for r in css(browser, "#results tbody tr")]
    assert second and not set(first) & set(second)
    api_first = site.api("messages", domain=domain, limit="5")
    api_second = site.api("messages", domain=domain, limit="5", cursor=api_first["next_cursor"])
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in css(browser, "#results tbody tr")] == \
        [e["queue_id"] or "—" for e in api_second["items"]]
    assert browser.find_element(By.ID, "first-page").is_displayed()
    browser.find_element(By.ID, "first-page").click()
    wait(browser, lambda d: "cursor=" not in d.current_url and rows_loaded(d))
    assert [r.text for r in css(browser, "#results tbody tr")] == first
    assert console_errors(browser) == []


def test_stats_charts_render_with_data(site: Site, browser: WebDriver) -> None:
    query = urllib.parse.urlencode({**site.range, "interval": "1h"})
    browser.get(f"{site.url}/stats?{query}")
    wait(browser, lambda d: len(css(d, ".panel .chart[data-loaded]")) == len(css(d, ".panel .chart")))
    failed = [p.get_attribute("id") for p in css(browser, ".panel") if
              p.find_element(By.CSS_SELECTOR, ".chart").get_attribute("data-loaded") != "true"]
    assert failed == [], [p.text for p in css(browser, ".panel .error")]

    # time series: a uPlot canvas of real size, and a legend whose totals are the API's
    for panel in ("p-volume", "p-rates", "p-sla", "p-dkim"):
        canvas = browser.find_element(By.CSS_SELECTOR, f"#{panel} canvas")
        assert canvas.size["width"] > 200 and canvas.size["height"] > 100, panel
    volume = site.api("stats/volume", **site.range, interval="1h")["items"]
    legend = {e.find_element(By.CLASS_NAME, "name").text: e.find_element(By.CLASS_NAME, "value").text
              for e in css(browser, "#p-volume .legend .item")}
    assert legend["sent"] == f"{sum(r['sent'] for r in volume):,}" and sum(r["sent"] for r in volume) > 0
    assert legend["received"] == f"{sum(r['received'] for r in volume):,}"
    assert re.fullmatch(r"\d+(\.\d)? %", browser.find_element(By.CSS_SELECTOR, "#p-sla .legend .value").text)
    assert browser.find_element(By.CSS_SELECTOR, "[data-tile=records] .v").text not in ("", "—", "0")

    # bar charts and heatmap: SVG with bars of nonzero width and labelled values
    for panel in ("p-domains", "p-slow", "p-dsn", "p-tls", "p-rejects", "p-senders"):
        widths = [float(r.get_attribute("width")) for r in css(browser, f"#{panel} svg rect.bar")]
        assert widths and max(widths) > 10, panel
        assert any(re.search(r"\d", t.text) for t in css(browser, f"#{panel} svg text.value")), panel
    cells = css(browser, "#p-heatmap svg rect.cell")
    assert len(cells) == 7 * 24
    assert len({c.get_attribute("fill") for c in cells}) > 3, "the heatmap shows varying intensity"
    assert console_errors(browser) == []
    screenshot(browser, "stats")

    # a DSN bar opens the search filtered to it, and the search finds that many records
    dsn_rows = site.api("stats/dsn", **site.range, limit="15")["items"]
    target = next(r for r in dsn_rows if r["records"] <= 100 and r["domain"])
    label = f"{target['dsn']} {target['domain']} {target['status']}"
    link = next(a for a in css(browser, "#p-dsn svg a")
                if a.find_element(By.TAG_NAME, "title").get_attribute("textContent") == label)
    link.click()
    wait(browser, lambda d: urllib.parse.urlparse(d.current_url).path == "/" and rows_loaded(d))
    q = urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)
    assert q["dsn"] == [target["dsn"]] and q["domain"] == [target["domain"]] and "from" in q
    assert len(css(browser, "#results tbody tr")) == target["records"]
    assert console_errors(browser) == []

    # a domain in the bounce/defer chart opens the search for that domain and range
    browser.back()
    wait(browser, lambda d: css(d, "#p-domains svg a"))
    link = css(browser, "#p-domains svg a")[0]
    domain = link.find_element(By.TAG_NAME, "title").get_attribute("textContent").split(" (")[0]
    link.click()
    wait(browser, lambda d: urllib.parse.urlparse(d.current_url).path == "/" and rows_loaded(d))
    assert urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)["domain"] == [domain]
    assert browser.find_element(By.NAME, "domain").get_attribute("value") == domain
    assert console_errors(browser) == []


def test_hostile_subject_and_reply_stay_text(site: Site, browser: WebDriver) -> None:
    browser.get(f"{site.url}/?subject=__pwned")
    wait(browser, rows_loaded)
    rows = css(browser, "#results tbody tr")
    assert len(rows) == 1
    assert rows[0].find_element(By.CSS_SELECTOR, "td.subject").text == HOSTILE_SUBJECT
    assert HOSTILE_REPLY in rows[0].find_elements(By.TAG_NAME, "td")[9].get_attribute("title")
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('main img, main b, main script').length") == 0
    screenshot(browser, "search-hostile")

    rows[0].find_element(By.CSS_SELECTOR, "a[href^='/messages/']").click()
    wait(browser, lambda d: css(d, ".lines li"))
    subject = next(dd for dt, dd in zip(css(browser, "dl.fields dt"), css(browser, "dl.fields dd")) if dt.text == "Subject")
    assert subject.text == HOSTILE_SUBJECT
    assert any(HOSTILE_SUBJECT in li.text for li in css(browser, ".lines li"))
    assert any(HOSTILE_REPLY in td.text for td in css(browser, "td.reply"))
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # hover/paint everything
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('main img, main b, main script').length") == 0
    assert console_errors(browser) == []
    screenshot(browser, "trace-hostile")


def test_unknown_queue_id_and_bad_filter_show_errors(site: Site, browser: WebDriver) -> None:
    browser.get(f"{site.url}/messages/NOSUCHQID")
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "NOSUCHQID" in browser.find_element(By.ID, "error").text
    browser.get(f"{site.url}/?from=yesterday")
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "from" in browser.find_element(By.ID, "error").text
    console_errors(browser)  # the API's 404/400 answers are logged as failed loads: expected here


def test_headers_and_shells(site: Site) -> None:
    for path in ("/", "/stats", f"/messages/{HOSTILE_QID}"):
        status, body = http_get(site.url + path)
        assert status == 200
        text = body.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), "no inline script"
        assert " style=" not in text and "<style" not in text, "no inline style"
        assert HOSTILE_QID not in text, "the shell carries no data; the script fetches it"
    with urllib.request.urlopen(site.url + "/stats") as resp:
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(site.url + "/static/common.js") as resp:
        assert "javascript" in resp.headers["Content-Type"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


# ---- login (pages only; the API's own token check is the API's) ------------------------

TOKENS = ["first-token-1234", "second-token-5678"]


def _pages_app(tokens: list[str]) -> web.Application:
    app = web.Application()
    pages.register(app, tokens=tokens)
    return app


async def test_login_sets_cookie_and_pages_need_it(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_pages_app(TOKENS))
    resp = await client.get("/stats?from=7d")
    assert resp.status == 401
    body = await resp.text()
    assert 'action="/login"' in body and 'value="/stats?from=7d"' in body
    assert "Content-Security-Policy" in resp.headers

    resp = await client.post("/login", data={"token": "wrong", "next": "/stats"}, allow_redirects=False)
    assert resp.status == 401 and "not valid" in await resp.text()
    assert "pi_token" not in resp.cookies

    resp = await client.post("/login", data={"token": TOKENS[1], "next": "/stats?from=7d"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/stats?from=7d"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"pi_token={TOKENS[1]};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie

    resp = await client.get("/stats")
    assert resp.status == 200 and 'data-page="stats"' in await resp.text()
    assert 'action="/logout"' in await resp.text()

    resp = await client.post("/logout", allow_redirects=False)
    assert resp.status == 303
    client.session.cookie_jar.clear()
    assert (await client.get("/")).status == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "javascript:alert(1)"])
async def test_login_never_redirects_off_site(aiohttp_client: AiohttpClient, target: str) -> None:
    client = await aiohttp_client(_pages_app(TOKENS))
    resp = await client.post("/login", data={"token": TOKENS[0], "next": target}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    client.session.cookie_jar.clear()
    resp = await client.get("/login", params={"next": target})
    assert 'value="/"' in await resp.text()


async def test_no_tokens_no_login(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_pages_app([]))
    for path in ("/", "/stats", "/messages/ABC"):
        resp = await client.get(path)
        assert resp.status == 200, path
    resp = await client.get("/static/app.css")
    assert resp.status == 200


def test_valid_token() -> None:
    assert token_ok("second-token-5678", tuple(TOKENS))
    assert not token_ok("second-token-567", tuple(TOKENS))
    assert not token_ok("", tuple(TOKENS))
    assert not token_ok(None, tuple(TOKENS))


@pytest.fixture
def login_site() -> Iterator[str]:
    """The pages alone, with tokens, on a loopback port in a thread of their own."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_pages_app(TOKENS))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_login_form_in_browser(login_site: str, browser: WebDriver) -> None:
    browser.delete_all_cookies()
    browser.get(login_site + "/stats?from=7d")
    form = browser.find_element(By.CSS_SELECTOR, "form.login-form")
    screenshot(browser, "login")
    browser.find_element(By.ID, "token").send_keys(TOKENS[0])
    form.submit()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-page=stats]"))
    assert urllib.parse.urlparse(browser.current_url).path == "/stats"
    assert browser.find_element(By.NAME, "from").get_attribute("value") == "7d"
    assert "pi_token" not in browser.execute_script("return document.cookie"), "HttpOnly: scripts cannot read it"
    assert browser.get_cookie("pi_token")["sameSite"] == "Strict"
    browser.delete_all_cookies()
    console_errors(browser)  # this app has no API behind it: its 404s are expected here



def test_login_then_pages_read_the_api_with_the_cookie(tmp_path: Path, browser: WebDriver) -> None:
    """serve with `[api] tokens`: the pages ask for a token, and the cookie /login sets is what
    their API calls then carry; a wrong cookie is asked to log in again."""
    log = ROOT / "tests" / "data" / "golden" / "delivery.log"
    service = Service(tmp_path, tmp_path / "store.duckdb", ["--log", str(log)],
                      config=f"[api]\ntokens = {json.dumps(TOKENS)}\n")
    try:
        service.wait_idle(len(log.read_bytes().splitlines()))
        assert http_get(service.url + "/api/v1/messages")[0] == 401
        status, body = http_get(service.url + "/?sender=alice@sender.example")
        assert status == 401 and b'action="/login"' in body

        browser.delete_all_cookies()
        browser.get(service.url + "/?sender=alice@sender.example")
        browser.find_element(By.ID, "token").send_keys(TOKENS[1])
        browser.find_element(By.CSS_SELECTOR, "form.login-form button").click()
        wait(browser, lambda d: rows_loaded(d))
        assert urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query) == {"sender": ["alice@sender.example"]}
        assert css(browser, "#results tbody tr") and not browser.find_element(By.ID, "error").is_displayed()

        browser.add_cookie({"name": "pi_token", "value": "not-a-valid-token-at-all", "path": "/"})
        browser.get(service.url + "/stats")
        assert css(browser, "form.login-form"), "a wrong cookie gets the login form"
        browser.delete_all_cookies()
        console_errors(browser)
    finally:
        service.stop()
