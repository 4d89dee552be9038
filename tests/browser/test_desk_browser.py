"""The Oracle's desk in a real browser (Debian's Chromium driven by Playwright) against the real
services on embedded defaults: the Tansu broker, a private Redis, the real scorer scoring the
real ZTF sample alerts with a small real model, the feedback API over HTTP.

One scenario, as a person would use it: refuse a wrong token, sign in, answer 10 questions by
keyboard (each label checked in Redis through the API), undo one, see a newly published alert
arrive on the open page, change the interest and see ``/v1/me`` follow, look at the
discoveries, sign out. Screenshots of every screen go to ``$AHUNT_DESK_SCREENSHOTS`` (the README's
are made with ``AHUNT_DESK_SCREENSHOTS=docs/img``), else to a temporary folder. The page's own
timings (ready, next question) are printed and saved beside them, never asserted.

Under CI (``CI=true``) a missing Chromium or Playwright fails these tests: ``.ci/setup``
installs both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.common import keys, store
from services.common.alerts import Alert, decode_message
from services.common.embedded import EmbeddedRedis
from services.common.kafka import Delivery, OutMessage, producer
from services.common.settings import KafkaSettings
from services.common.users import Budget, UserProfile
from services.feedback.serve import ThreadedServer
from services.feedback.tokens import add_user
from tests.desk_support import serve_desk
from tests.samples import unique_copies

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANSWERS = 10
# Every stamp matching a selector loaded, at its native 63 x 63 pixels.
ALL_LOADED = (
    "s => [...document.querySelectorAll(s)].every(i => i.complete && i.naturalWidth === 63)"
)


def _require_browser() -> Any:
    """playwright's sync API, or a skip (a failure under CI)."""
    missing = []
    try:
        from playwright import sync_api
    except ImportError:
        missing.append("the playwright package (dev extra)")
        sync_api = None
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        message = f"browser tests need {' and '.join(missing)}: .ci/setup installs them"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    return sync_api


@dataclass
class Stack:
    api: ThreadedServer
    token: str
    user: str
    http: httpx.Client  # the API with alice's bearer token, for checks
    publish_alert: Any  # () -> the id of a new alert sent into the scorer
    redis: redis.Redis


@pytest.fixture
def stack(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Any,
    group_id: str,
    model_root: Path,
    ztf_payloads: list[bytes],
) -> Iterator[Stack]:
    from prometheus_client import CollectorRegistry

    from services.scorer.app import ModelWatcher, build_loop
    from services.scorer.metrics import ScorerMetrics
    from services.scorer.model import ModelSlot
    from services.scorer.settings import ScorerSettings

    user = "alice"
    token = add_user(redis_client, user)
    store.save_profile(redis_client, UserProfile(name=user, budget=Budget(alerts=100_000)))
    source = new_topic("alerts")
    settings = ScorerSettings(
        input_topics=[source],
        group_id=group_id,
        model_dir=model_root,
        batch_size=64,
        metrics_port=0,
    )
    metrics = ScorerMetrics(CollectorRegistry())  # its own registry
    slot = ModelSlot()
    ModelWatcher(settings, slot, metrics).check()
    loop = build_loop(settings, kafka_settings, kafka_bootstrap, redis_client, metrics, slot)
    delivery = Delivery(
        producer(kafka_settings, kafka_bootstrap, **{"message.max.bytes": 10_000_000})
    )
    delivery.send([OutMessage(source, p) for p in ztf_payloads])
    stop = threading.Event()

    def score() -> None:
        while not stop.is_set():
            loop.step()

    scorer = threading.Thread(target=score, name="scorer", daemon=True)
    scorer.start()
    fresh = iter(unique_copies(ztf_payloads[:5], 2)[5:])  # new ids, never sent before

    def publish_alert() -> str:
        payload = next(fresh)
        delivery.send([OutMessage(source, payload)])
        (alert,) = decode_message(payload)
        assert isinstance(alert, Alert)
        return alert.alert_id

    api = serve_desk(redis_server.url, kafka_settings, kafka_bootstrap)
    http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    try:
        # The sample night is scored before the page opens (a budget larger than the stream:
        # every alert is delivered), so what arrives later is new.
        ids = {a.alert_id for p in ztf_payloads for a in decode_message(p) if isinstance(a, Alert)}
        _until(
            lambda: redis_client.hlen(keys.delivered_key(user)) == len(ids),
            "the scorer to deliver the samples",
            60,
        )
        assert len(http.get("/v1/me/questions?limit=20").json()["items"]) == 20
        yield Stack(api, token, user, http, publish_alert, redis_client)
    finally:
        http.close()
        api.stop()
        stop.set()
        scorer.join(10)
        loop.consumer.close()
        # Producers closed now, not at garbage collection after the broker is gone (which
        # fills the log with reconnect attempts).
        loop.delivery.producer.close()
        delivery.producer.close()


def _until(check: Any, what: str, timeout_s: float = 10.0, pause: Any = time.sleep) -> Any:
    """Poll ``check`` until truthy. With a page open, ``pause`` must be the page's own wait:
    Playwright's sync API runs route and event handlers only inside its calls."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause(0.05)


def _wait_js(page: Any, expression: str, arg: Any = None, timeout_s: float = 10.0) -> Any:
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function evaluates
    its predicate with eval, which the desk's Content-Security-Policy forbids, rightly.)"""
    return _until(lambda: page.evaluate(expression, arg), expression, timeout_s, _pause(page))


def _pause(page: Any) -> Any:
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def _label(http: httpx.Client, alert_id: str) -> dict[str, Any] | None:
    items = http.get("/v1/feedback?limit=500").json()["items"]
    return next((i for i in items if i["alert_id"] == alert_id), None)


@pytest.fixture
def browser() -> Any:
    """Checked before the stack starts, so a skip costs nothing."""
    return _require_browser()


def test_the_desk_in_a_real_browser(browser: Any, stack: Stack, tmp_path: Path) -> None:
    sync_api = browser
    shots = Path(os.environ.get("AHUNT_DESK_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    base = stack.api.url
    requests: list[str] = []
    problems: list[str] = []
    profile = tmp_path / "chromium-profile"  # a fresh user data dir
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            timings = _scenario(page, stack, base, shots)
        finally:
            context.close()
    outside = [u for u in requests if not u.startswith((base, "data:"))]
    assert outside == [], "the desk must load nothing from elsewhere"
    # No script error; the only console errors are the browser's own notes of the refusals this
    # scenario provokes (401 signed out or wrong token, 503 then retried, 404 expired).
    expected = re.compile(r"^Failed to load resource: .* status of (401|404|503) ")
    assert [p for p in problems if not expected.match(p)] == []
    (shots / "desk-timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\ndesk timings (loopback, shared 2-core machine): {json.dumps(timings)}")


def _scenario(page: Any, stack: Stack, base: str, shots: Path) -> dict[str, Any]:
    http = stack.http

    def _until_page(check: Any, what: str, timeout_s: float = 10.0) -> Any:
        return _until(check, what, timeout_s, _pause(page))

    page.goto(f"{base}/")  # redirects to /desk
    page.wait_for_selector("#signin:not([hidden])")
    assert page.url == f"{base}/desk"
    page.screenshot(path=str(shots / "desk-signin.png"))

    # A wrong token is refused and says so; nothing is signed in.
    page.fill("#token", "ahunt_not-my-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("#signin-error:has-text('not valid')")
    assert page.context.cookies() == []
    assert page.is_visible("#signin")

    # The right token: a session cookie (HttpOnly, Strict), the token itself forgotten.
    page.fill("#token", stack.token)
    page.keyboard.press("Enter")
    page.wait_for_selector("#question:not([hidden])")
    _wait_js(page, "window.deskMetrics.ready_ms !== null")
    (cookie,) = page.context.cookies()
    assert (
        cookie["httpOnly"] and cookie["sameSite"] == "Strict" and stack.token not in cookie["value"]
    )
    assert page.input_value("#token") == ""

    # Ready time: a reload signs in from the cookie and shows the first question.
    page.reload()
    _wait_js(page, "window.deskMetrics.ready_ms !== null")
    ready_ms = page.evaluate("window.deskMetrics.ready_ms")
    _wait_js(page, ALL_LOADED, ".triplet img")
    page.wait_for_selector("#live[data-state='live']")
    page.screenshot(path=str(shots / "desk-questions.png"))

    # A newly published alert reaches the open page through the scorer and the live stream
    # (first: the answers below dismiss 'normal', after which the scorer rightly stops sending
    # alerts like it).
    before = page.evaluate("window.deskMetrics.live.length")
    new_id = stack.publish_alert()
    _until_page(
        lambda: (
            _label(http, new_id) is None and http.get(f"/v1/alerts/{new_id}").status_code == 200
        ),
        "the scorer to deliver the new alert",
        30,
    )
    _wait_js(page, f"window.deskMetrics.live.length > {before}", timeout_s=30)
    assert page.evaluate("window.deskMetrics.live.at(-1)") == new_id
    page.wait_for_selector(f"#live-items button[data-alert-id='{new_id}']")
    assert any(
        q["alert_id"] == new_id for q in http.get("/v1/me/questions?limit=100").json()["items"]
    )
    assert before == 0 and page.evaluate("window.deskMetrics.live") == [new_id]
    page.locator("#live-items").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "desk-live.png"))

    # View keys: s switches every stamp's stretch, + zooms in, 0 goes back to 1:1.
    page.keyboard.press("s")
    assert "stretch=asinh" in (page.get_attribute("#img-science", "src") or "")
    page.keyboard.press("s")
    assert "stretch=zscale" in (page.get_attribute("#img-science", "src") or "")
    page.keyboard.press("+")
    assert "scale(1.5)" in (page.get_attribute("#img-difference", "style") or "")
    page.keyboard.press("0")
    assert "scale(1)" in (page.get_attribute("#img-difference", "style") or "")

    # Ten answers by keyboard, each checked in Redis through the API.
    plan: list[tuple[list[str], str, bool | None]] = [
        (["1"], "normal", None),
        (["Shift+Digit1"], "normal", True),
        (["n"], "normal", False),
        (["c", "type:Lensed arc", "Tab", "ArrowDown", "Tab", "Enter"], "lensed_arc", True),
        (["2"], "lensed_arc", None),
        (["Shift+Digit2"], "lensed_arc", True),
        (["1"], "normal", None),
        (["Shift+Digit2"], "lensed_arc", True),
        (["2"], "lensed_arc", None),
        (["1"], "normal", None),
    ]
    assert len(plan) == ANSWERS
    answered: list[str] = []
    for pressed, label, interesting in plan:
        alert_id = page.get_attribute("#question", "data-alert-id")
        assert alert_id and alert_id not in answered
        for key in pressed:
            if key.startswith("type:"):
                page.keyboard.type(key[5:])
            else:
                page.keyboard.press(key)
        _wait_js(
            page, "id => document.querySelector('#question').dataset.alertId !== id", arg=alert_id
        )
        stored = _until_page(lambda a=alert_id: _label(http, a), f"the label of {alert_id}")
        assert (stored["label"], stored["interesting"]) == (label, interesting), alert_id
        answered.append(alert_id)
    _wait_js(page, f"window.deskMetrics.next_ms.length >= {ANSWERS}")
    next_ms = page.evaluate("window.deskMetrics.next_ms")

    # Undo: the last alert is back on screen and its label is gone from Redis.
    page.keyboard.press("u")
    _wait_js(
        page, "id => document.querySelector('#question').dataset.alertId === id", arg=answered[-1]
    )
    _until_page(lambda: _label(http, answered[-1]) is None, "the undo")
    assert all(_label(http, a) for a in answered[:-1])
    assert http.get("/v1/me").json()["labels"]["total"] == ANSWERS - 1

    # A post that fails is shown and retried, never dropped: the first try answers 503.
    failures = iter([True])

    def flaky(route: Any) -> None:
        if route.request.method == "POST" and next(failures, False):
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "label store unavailable (test): not acknowledged"}',
            )
        else:
            route.continue_()

    page.route("**/v1/feedback", flaky)
    retried = page.get_attribute("#question", "data-alert-id")
    page.keyboard.press("1")
    page.wait_for_selector("#outbox-text:has-text('1 answer not sent yet')")
    page.screenshot(path=str(shots / "desk-retrying.png"))
    _until_page(lambda: _label(http, retried), "the retried label", 15)
    page.wait_for_selector("#outbox", state="hidden")
    page.unroute("**/v1/feedback")

    # A refusal (the alert expired from every cache meanwhile: 404) stays on screen.
    expired = page.get_attribute("#question", "data-alert-id")
    stack.redis.delete(keys.alert_key(expired))
    page.keyboard.press("1")
    page.wait_for_selector(f"#failures li:has-text('{expired}')")
    assert "unknown or expired" in page.inner_text("#failures")
    assert _label(http, expired) is None
    page.click("#failures button")
    page.wait_for_selector("#failures", state="hidden")

    # Help.
    page.keyboard.press("?")
    page.wait_for_selector("#help[open]")
    page.screenshot(path=str(shots / "desk-help.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")

    # My interest: dismiss a class, raise another, change the budget; /v1/me follows.
    page.keyboard.press("i")
    page.wait_for_selector("#weights tr[data-class='normal']")
    page.check("#weights tr[data-class='normal'] input[type=checkbox]")
    page.fill("#weights tr[data-class='lensed_arc'] input[type=number]", "3")
    page.fill("#budget-alerts", "40")
    page.select_option("#budget-period", "hour")
    page.check("#survey-ztf")
    page.focus("#interest-save")
    page.keyboard.press("Enter")
    page.wait_for_selector("#interest-status[data-kind='ok']")
    page.screenshot(path=str(shots / "desk-interest.png"), full_page=True)
    me = http.get("/v1/me").json()
    assert (
        me["interest"]["weights"]["normal"] == 0.0
        and me["interest"]["weights"]["lensed_arc"] == 3.0
    )
    assert me["budget"] == {"alerts": 40, "period": "hour"}
    assert me["interest"]["filters"]["surveys"] == ["ztf"]

    # My discoveries: the curve and the gallery of what was liked.
    page.keyboard.press("d")
    page.wait_for_selector("#curve svg polyline.liked")
    liked = sum(1 for _, _, i in plan[:-1] if i is True)  # the retried answer had no opinion
    assert page.locator("#gallery li").count() == liked
    _wait_js(page, ALL_LOADED, "#gallery img")
    page.screenshot(path=str(shots / "desk-discoveries.png"), full_page=True)

    # The API docs render offline too.
    docs = page.context.new_page()
    docs.goto(f"{base}/docs")
    docs.wait_for_selector(".swagger-ui .information-container")
    docs.screenshot(path=str(shots / "desk-docs.png"))
    docs.close()

    # Sign out: the session is gone on the server and in the browser.
    page.keyboard.press("q")
    page.click("#sign-out")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.context.cookies() == []
    assert page.request.get(f"{base}/v1/me").status == 401
    return {
        "ready_ms": round(ready_ms, 1),
        "next_question_ms": {
            "median": round(statistics.median(next_ms), 1),
            "max": round(max(next_ms), 1),
            "all": [round(x, 1) for x in next_ms],
        },
        "chromium": shutil.which("chromium") or CHROMIUM,
    }
