"""The email dashboard in a real headless Chromium (selenium), served by a real `mailroom server`.

The page is opened before any pipeline exists (it must show hints, not break), then the email
app's pipelines (src/mailroom/email/pipelines/*.sql) are submitted with POST /ksql, simulated
events are produced to `email-events`, and the page must draw them, move when more arrive, and
find a message by id and by recipient. The screenshot goes to bench/results/dashboard.png.
The in-process API tests below use minimal statements of their own with the contract's names and
columns (docs/email-pipelines.md), so they test the dashboard alone.

Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/deps/40-chromium.sh).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from mailroom.email.pipelines import all_sql
from mailroom.email.simulator import SimConfig, simulate
from mailroom.log import open_log
from mailroom.server import KsqlServer, create_app

from ..server.realserver import running_server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "bench" / "results" / "dashboard.png"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

_HEALTH = """SELECT {key}, COUNT(*) AS ATTEMPTS,
  SUM(CASE WHEN TYPE = 'delivered' THEN 1 ELSE 0 END) AS DELIVERED,
  SUM(CASE WHEN TYPE = 'deferred' THEN 1 ELSE 0 END) AS DEFERRED,
  SUM(CASE WHEN TYPE = 'bounced' THEN 1 ELSE 0 END) AS BOUNCED,
  CAST(SUM(CASE WHEN TYPE = 'delivered' THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS ACCEPT_RATE,
  MAX(LATENCY_MS) AS P95_LATENCY_MS
  FROM EMAIL_EVENTS WINDOW TUMBLING (SIZE 1 MINUTE)
  WHERE TYPE IN ('delivered', 'deferred', 'bounced') GROUP BY {key} EMIT CHANGES"""

#: the contract's sources, minimal (only what the dashboard reads), for the in-process tests
PIPELINES = f"""
CREATE STREAM EMAIL_EVENTS (MESSAGE_ID STRING KEY, TYPE STRING, TS BIGINT, RECIPIENT STRING, DOMAIN STRING,
  PROVIDER STRING, CAMPAIGN_ID STRING, MTA STRING, ATTEMPT INT, SMTP_CODE INT, ENHANCED_CODE STRING, REPLY STRING,
  LATENCY_MS BIGINT, BOUNCE_CLASS STRING, BOUNCE_REASON STRING)
  WITH (kafka_topic='email-events', value_format='JSON', partitions=2, timestamp='TS');
CREATE TABLE EMAIL_STATE AS SELECT MESSAGE_ID,
  LATEST_BY_OFFSET(CASE WHEN TYPE IN ('opened', 'clicked', 'complained', 'unsubscribed') THEN NULL ELSE TYPE END) AS STATE,
  LATEST_BY_OFFSET(RECIPIENT) AS RECIPIENT, LATEST_BY_OFFSET(PROVIDER) AS PROVIDER,
  LATEST_BY_OFFSET(CAMPAIGN_ID) AS CAMPAIGN_ID, LATEST_BY_OFFSET(MTA) AS MTA, MAX(ATTEMPT) AS ATTEMPTS,
  MIN(TS) AS FIRST_TS, MAX(TS) AS LAST_TS, LATEST_BY_OFFSET(SMTP_CODE) AS LAST_SMTP_CODE,
  LATEST_BY_OFFSET(REPLY) AS LAST_REPLY, COUNT(*) AS EVENTS
  FROM EMAIL_EVENTS GROUP BY MESSAGE_ID EMIT CHANGES;
CREATE TABLE MTA_HEALTH_PROVIDER AS {_HEALTH.format(key="PROVIDER")};
CREATE TABLE MTA_HEALTH_NODE AS {_HEALTH.format(key="MTA")};
CREATE TABLE CAMPAIGN_STATS AS SELECT CAMPAIGN_ID, COUNT_DISTINCT(MESSAGE_ID) AS SENT,
  SUM(CASE WHEN TYPE = 'delivered' THEN 1 ELSE 0 END) AS DELIVERED,
  SUM(CASE WHEN TYPE = 'bounced' THEN 1 ELSE 0 END) AS BOUNCED,
  SUM(CASE WHEN TYPE = 'deferred' THEN 1 ELSE 0 END) AS DEFERRED,
  SUM(CASE WHEN TYPE = 'opened' THEN 1 ELSE 0 END) AS OPENED,
  SUM(CASE WHEN TYPE = 'clicked' THEN 1 ELSE 0 END) AS CLICKED,
  SUM(CASE WHEN TYPE = 'complained' THEN 1 ELSE 0 END) AS COMPLAINED
  FROM EMAIL_EVENTS WHERE CAMPAIGN_ID IS NOT NULL GROUP BY CAMPAIGN_ID EMIT CHANGES;
CREATE STREAM ALERTS (ALERT_ID STRING KEY, KIND STRING, SUBJECT STRING, VALUE DOUBLE, BASELINE DOUBLE,
  WINDOW_START BIGINT, TS BIGINT, MESSAGE STRING)
  WITH (kafka_topic='ALERTS', value_format='JSON', partitions=1, timestamp='TS');
CREATE STREAM STUCK_MAIL (MESSAGE_ID STRING KEY, STATE STRING, RECIPIENT STRING, DOMAIN STRING, PROVIDER STRING,
  LAST_TS BIGINT, AGE_MS BIGINT, DETECTED_TS BIGINT)
  WITH (kafka_topic='STUCK_MAIL', value_format='JSON', partitions=1, timestamp='DETECTED_TS');
"""
ENGAGEMENT = {"opened", "clicked", "complained", "unsubscribed"}


def _events() -> list[dict]:
    """~1000 simulated events, 1 message per second of event time (so many 1-minute windows)."""
    evs = [e for batch in simulate(messages=400, seed=11, config=SimConfig(rate_per_s=1.0)) for e in batch]
    return sorted(evs, key=lambda e: e["ts"])


def _produce(log_url: str, events: list[dict]) -> None:
    log = open_log(log_url)
    try:
        p = log.producer()
        for e in events:
            p.send("email-events", orjson.dumps(e), e["message_id"].encode(), timestamp=e["ts"])
        p.flush()
    finally:
        log.close()


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path, extensions=True) as (base, _proc):
        yield base, f"embedded:{tmp_path / 'log'}"


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, cond, what: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: cond(d), message=f"waited for {what}")


def _points(driver, chart: str) -> int:
    return int(driver.find_element("id", chart).get_attribute("data-points") or 0)


def _search(driver, text: str) -> None:
    box = driver.find_element("id", "q")
    box.clear()
    box.send_keys(text)
    driver.find_element("css selector", "#search button").click()


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.slow
def test_dashboard_live_in_a_browser(server, browser):
    base, log_url = server
    events = _events()
    cut = events[0]["ts"] + 4 * 60_000  # the first 4 minutes, then the rest
    first, rest = [e for e in events if e["ts"] < cut], [e for e in events if e["ts"] >= cut]

    # no pipelines yet: the page comes up and says what is missing
    browser.get(base + "/dashboard")
    hint = browser.find_element("css selector", '.hint[data-source="MTA_HEALTH_PROVIDER"]')
    _wait(browser, lambda d: hint.is_displayed() and "does not exist yet" in hint.text, "the missing-table hint")
    assert _points(browser, "p-accept") == 0

    r = httpx.post(base + "/ksql", json={"ksql": all_sql(), "streamsProperties": {}}, timeout=60)
    assert r.status_code == 200, r.text
    _produce(log_url, first)
    alert = {"ALERT_ID": "a-1", "KIND": "deferral_spike", "SUBJECT": "yahoo", "VALUE": 0.41, "BASELINE": 0.05,
             "WINDOW_START": cut, "TS": cut, "MESSAGE": "yahoo deferred 41% of attempts in the 1-minute window (usually 5%)"}
    stuck_id = first[0]["message_id"]
    stuck = {"MESSAGE_ID": stuck_id, "STATE": "deferred", "RECIPIENT": first[0]["recipient"], "DOMAIN": first[0]["domain"],
             "PROVIDER": first[0]["provider"], "LAST_TS": cut - 60_000, "AGE_MS": 4 * 3_600_000, "DETECTED_TS": cut}
    for target, row in (("ALERTS", alert), ("STUCK_MAIL", stuck)):
        r = httpx.post(base + "/inserts-stream", content=json.dumps({"target": target}) + "\n" + json.dumps(row) + "\n",
                       timeout=30)
        assert r.status_code == 200 and '"ok"' in r.text, r.text

    # the page picks the new tables up by itself and draws the windows
    _wait(browser, lambda d: _points(d, "p-accept") > 0 and _points(d, "n-deferred") > 0, "provider and node charts")
    assert not hint.is_displayed()
    _wait(browser, lambda d: "41% of attempts" in d.find_element("id", "alerts").text, "the alert")
    _wait(browser, lambda d: stuck_id in d.find_element("id", "stuck").text, "the stuck message")
    _wait(browser, lambda d: "c00000" in d.find_element("id", "campaigns").text, "the campaign table")
    providers = {e["provider"] for e in first if e["type"] in ("delivered", "deferred", "bounced")}
    _wait(browser, lambda d: all(p in d.find_element("id", "p-latest").text for p in providers), "every provider's row")
    pills = browser.find_elements("css selector", "#sources .pill.live")
    assert len(pills) == 6, browser.find_element("id", "sources").get_attribute("innerHTML")

    # more events: the charts move
    n1, w1 = _points(browser, "p-accept"), int(browser.find_element("id", "p-windows").text)
    _produce(log_url, rest)
    _wait(browser, lambda d: _points(d, "p-accept") > n1 and int(d.find_element("id", "p-windows").text) > w1,
          "the provider chart to update")

    # search by message id: the state and the whole timeline
    by_msg: dict[str, list[dict]] = {}
    for e in events:
        by_msg.setdefault(e["message_id"], []).append(e)
    mid, evs = max(by_msg.items(), key=lambda kv: (sum(e["type"] == "deferred" for e in kv[1]), len(kv[1])))
    assert len(evs) >= 3
    state = [e["type"] for e in evs if e["type"] not in ENGAGEMENT][-1]
    _search(browser, mid)
    _wait(browser, lambda d: d.find_elements("id", "result-state") and d.find_element("id", "result-state").text == state,
          f"state {state} of {mid}")
    # (the open result refreshes itself: it catches up with the event index if that lags)
    badges = lambda d: d.execute_script(  # noqa: E731 - each event's type: the first badge of its item
        "return [...document.querySelectorAll('#timeline li')].map(li => li.querySelector('.badge').textContent)")
    _wait(browser, lambda d: badges(d) == [e["type"] for e in evs], f"the timeline of {mid}")
    assert browser.find_element("id", "result-message").get_attribute("data-message-id") == mid

    # search by recipient: finds the same message
    rcpt = evs[0]["recipient"]
    _search(browser, rcpt)
    _wait(browser, lambda d: d.find_element("id", "result-query").text == rcpt, "the recipient search")
    found = browser.find_element("id", "result").text
    assert mid in found and "Messages to" in found

    # back to the message search for the picture, the whole page in it
    _search(browser, mid)
    _wait(browser, lambda d: d.find_elements("id", "result-state") and d.find_element("id", "result-state").text == state,
          "the message again")
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the viewport is exactly the page
                            {"width": 1280, "height": min(height, 4000), "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.5)  # the charts redraw for the new size
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    assert _severe(browser) == []


# -- the JSON endpoints in-process (no browser) ----------------------------------------------------------
def test_api_hints_when_nothing_exists(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    with TestClient(create_app(srv, extensions=True)) as c:
        assert c.get("/dashboard", follow_redirects=False).status_code == 307
        page = c.get("/dashboard/")
        assert page.status_code == 200 and 'id="p-accept"' in page.text
        assert c.get("/dashboard/static/app.js").status_code == 200
        deadline = time.monotonic() + 10
        while True:
            snap = c.get("/dashboard/api/live").json()
            if snap["sources"]["EMAIL_EVENTS"]["status"] == "missing" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert {s["status"] for s in snap["sources"].values()} == {"missing"}
        assert snap["provider"] == [] and snap["alerts"] == []
        same = c.get(f"/dashboard/api/live?since={snap['version']}").json()
        assert same == {"version": snap["version"], "unchanged": True}
        res = c.get("/dashboard/api/search", params={"q": "nobody@example.com"}).json()
        assert res["messages"] == []
        assert any("EMAIL_STATE does not exist yet" in h for h in res["hints"])


def test_api_search_and_quoting(tmp_path):
    srv = KsqlServer(f"embedded:{tmp_path / 'log'}", tmp_path / "state")
    srv.run_ksql(PIPELINES)
    events = _events()[:300]
    p = srv.log.producer()
    for e in events:
        p.send("email-events", orjson.dumps(e), e["message_id"].encode(), timestamp=e["ts"])
    p.flush()
    with TestClient(create_app(srv, extensions=True)) as c:
        mid = events[0]["message_id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            res = c.get("/dashboard/api/search", params={"q": mid}).json()
            n = sum(e["message_id"] == mid for e in events)
            if res["messages"] and res["messages"][0]["state"] and len(res["messages"][0]["events"]) == n:
                break
            time.sleep(0.2)
        [m] = res["messages"]
        assert m["message_id"] == mid and m["state"]["RECIPIENT"] == events[0]["recipient"]
        assert [e["TYPE"] for e in m["events"]] == [e["type"] for e in events if e["message_id"] == mid]
        assert m["events_from"] == "index"
        # a message the index no longer holds: no timeline unless a scan is asked for
        live = c.app.state.dashboard
        with live.lock:
            live.index.clear()
        [m] = c.get("/dashboard/api/search", params={"q": mid}).json()["messages"]
        assert (m["events_from"], m["events"], m["state"]["MESSAGE_ID"]) == ("none", [], mid)
        [m] = c.get("/dashboard/api/search", params={"q": mid, "scan": "true"}).json()["messages"]
        assert m["events_from"] == "scan"
        assert [e["TYPE"] for e in m["events"]] == [e["type"] for e in events if e["message_id"] == mid]
        # by recipient without the index: EMAIL_STATE filtered by RECIPIENT
        res = c.get("/dashboard/api/search", params={"q": events[0]["recipient"].upper()}).json()
        assert res["kind"] == "recipient" and mid in [m["message_id"] for m in res["messages"]]
        # a quote in the text is a literal, not SQL
        res = c.get("/dashboard/api/search", params={"q": "x' OR '1'='1"}).json()
        assert res["messages"] == [] and res["hints"] == ["No message with id x' OR '1'='1."]
