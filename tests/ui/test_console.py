"""The console in a real Chromium against `contractor demo` (a demo inventory, its
subcontractor answering): log in, walk every page, follow a job to done through its
subscription, be refused as a reader, and never load anything from outside."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.ui.browser import Browser, chromium
from tests.ui.demo import PASSWORD, Demo, structure_id


def test_an_operator_logs_in_and_walks_every_page(demo: Demo, browser: Browser) -> None:
    browser.open("/ui/")
    browser.find("#login-user").send_keys("ada")
    browser.find("#login-password").send_keys("wrong password")
    browser.find("#login-submit").click()
    refused = browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".login .error").text)
    assert "password" in refused.lower()  # the server's words, beside the button
    browser.find("#login-password").clear()
    browser.login("ada", PASSWORD)
    assert "ada (operator)" in browser.text("#who")
    browser.wait(lambda d: d.find_element(By.ID, "live").text == "live")
    assert "demo-east" in browser.text("#counts")
    assert browser.all("#counts .state-built")  # built machines counted, in their colour
    assert browser.all("#recent-events li")  # the newest events at once, not after the next
    browser.screenshot("dashboard")

    web01 = structure_id(demo, "east-web01")
    pages = [
        ("#/sites?site=demo", "Sites", ["demo-east", "domain_name", "Inherited by", "site demo"]),
        ("#/foundations", "Foundations", ["east-sim01", "west-sim03", "simulated", "of 11"]),
        ("#/foundations?state=BUILT&q=west", "Foundations", ["west-sim01", "of 3"]),
        ("#/structures", "Structures", ["east-web01", "10.20.1.2", "linux"]),
        ("#/structures?ip=10.20.2.2", "Structures", ["west-web01", "1\u20131 of 1"]),
        ("#/foundation/east-sim01", "Foundation east-sim01", ["eth0", "02:00:00:00:00:00"]),
        (f"#/structure/{web01}", "Structure east-web01", ["10.20.1.2", "site demo", "linux"]),
        ("#/jobs", "Jobs", ["create", "structure east-web01"]),
        ("#/blocks", "Address blocks", ["10.20.1.0/24", "free of 254"]),
        ("#/block/1", "Address block", ["the gateway", "east-web01", "Free offsets", "5\u2013254"]),
        ("#/zones", "DNS zones", ["demo.test", "No problems.", "Published text"]),
        ("#/zones?zone=demo.test", "DNS zones", ["SOA", "east-web01", "in-addr.arpa"]),
        ("#/discovered", "Discovered hardware", ["no discovered machine matches", "Matched"]),
        ("#/webhooks", "Webhooks", ["admins"]),
    ]
    for fragment, title, words in pages:
        browser.go(fragment)
        browser.title_is(title)
        shown = browser.text()
        for word in words:
            assert word in shown, (fragment, word, shown[:2000])
    # paging: forward by the cursor, back to the first page; the place is in the address
    browser.go("#/structures?size=4&q=web")  # the six web hosts (not the Complex's)
    browser.title_is("Structures")
    assert "1\u20134 of 6" in browser.text(".pager")
    browser.driver.find_element(By.LINK_TEXT, "Next page").click()
    browser.wait(lambda d: "5\u20136 of 6" in d.find_element(By.CSS_SELECTOR, ".pager").text)
    assert "after=" in browser.driver.current_url
    assert not browser.driver.find_elements(By.LINK_TEXT, "Next page")  # the last page
    assert "west-web03" in browser.text("table")
    browser.driver.find_element(By.LINK_TEXT, "First page").click()
    browser.wait(lambda d: "1\u20134 of 6" in d.find_element(By.CSS_SELECTOR, ".pager").text)
    # every page's screenshot, for people to look at (the artefacts folder)
    for fragment, name in (
        ("#/sites?site=demo", "sites"),
        ("#/foundations", "foundations"),
        ("#/structures", "structures"),
        (f"#/structure/{web01}", "structure"),
        ("#/foundation/east-sim01", "foundation"),
        ("#/block/1", "address-block"),
        ("#/zones", "zones"),
    ):
        browser.go(fragment)
        browser.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "main[aria-busy]"))
        time.sleep(0.2)
        browser.screenshot(name)
    # secrets are never shown: the blueprint's root_password_hash is named, its value not
    browser.go(f"#/structure/{web01}")
    browser.title_is("Structure east-web01")
    assert "root_password_hash" in browser.text()
    assert "secret: not shown" in browser.text()
    browser.assert_stayed_home()


def test_a_job_started_from_its_page_reaches_done_through_the_subscription(
    demo: Demo, browser: Browser
) -> None:
    browser.login("ada", PASSWORD)
    web02 = structure_id(demo, "west-web02")
    browser.go(f"#/structure/{web02}")
    browser.title_is("Structure west-web02")
    browser.driver.execute_script("window.sameDocument = true")
    browser.find('[data-action="run-power-cycle"]').click()
    dialog = browser.find("dialog[open]")
    assert 'utility job "power-cycle"' in dialog.text  # what will happen, before it does
    dialog.find_element(By.CSS_SELECTOR, "button[value=ok]").click()
    browser.title_is("Job #")
    job_id = int(re.findall(r"#/job/(\d+)", browser.driver.current_url)[0])
    # while it runs: the line it is at is marked in its script
    marked = browser.find("#script li.current")
    assert "foundation.power" in marked.text or "delay" in marked.text, marked.text
    assert marked.get_attribute("aria-current") == "step"
    browser.screenshot("job-running")
    browser.wait(
        lambda d: d.find_element(By.ID, "job-state").text == "done", timeout=90, message="done"
    )
    assert browser.find("#job-progress").get_attribute("value") == "100"
    assert browser.text("#job-percent") == "100%"
    browser.wait(lambda d: "queued → done" in d.find_element(By.ID, "job-log").text)
    assert browser.driver.execute_script("return window.sameDocument") is True  # no reload
    browser.screenshot("job")
    browser.collect()
    updates = [
        json.loads(frame)["payload"]["data"]["job"]
        for frame in browser.frames
        if '"jobId"' in frame and json.loads(frame).get("type") == "next"
    ]
    mine = [update for update in updates if update["jobId"] == job_id]
    assert mine[0]["kind"] == "current"
    assert mine[-1]["state"] == "DONE"
    assert mine[-1]["finished"] is True
    assert any(0 < update["progress"] < 100 for update in mine), mine  # it moved, live
    assert [u["progress"] for u in mine] == sorted(u["progress"] for u in mine)
    # the job's page while it ran asked the server only when an update came: no polling loop
    posts = [url for url in browser.requests if url.endswith("/graphql")]
    assert len(posts) <= len(mine) + 12, (len(posts), len(mine))
    browser.assert_stayed_home()


def test_a_reader_sees_no_action_and_the_server_refuses_one(demo: Demo, browser: Browser) -> None:
    browser.login("rita", PASSWORD)
    web01 = structure_id(demo, "east-web01")
    browser.go(f"#/structure/{web01}")
    browser.title_is("Structure east-web01")
    assert browser.all("[data-action]") == []
    browser.go("#/job/1")
    browser.title_is("Job #1")
    assert browser.all("[data-action]") == []
    # the reader tries anyway, through the console's own API module, with their own token
    answer = browser.run(
        "const api = await import('/ui/api.js');"
        "return (await api.gql(`mutation ($id: Int!) { doDestroy(structure: $id) {"
        " __typename ... on Error { code message } } }`, { id: args[0] })).doDestroy;",
        web01,
    )
    assert answer["__typename"] == "ForbiddenError", answer
    assert "operator" in answer["message"]
    state = demo.ask("query ($id: Int!) { structure(id: $id) { state } }", id=web01)
    assert state == {"structure": {"state": "BUILT"}}  # nothing changed
    browser.assert_stayed_home()


def test_the_address_block_page_pages_its_addresses(demo: Demo, browser: Browser) -> None:
    """One page of the block's addresses at a time (the gateway on the page its offset falls
    in), the free runs and pools from the server, whatever page is shown."""
    browser.login("rita", PASSWORD)
    browser.go("#/block/1")
    browser.title_is("Address block")
    shown = browser.text()
    for word in ("the gateway", "east-web01", "Free offsets", "5\u2013254", "no DHCP pool"):
        assert word in shown, (word, shown)
    browser.go("#/block/1?size=2")
    browser.title_is("Address block")
    assert "1\u20132 of 3" in browser.text(".pager")
    assert "the gateway" in browser.text("table")
    browser.driver.find_element(By.LINK_TEXT, "Next page").click()
    browser.wait(lambda d: "3\u20133 of 3" in d.find_element(By.CSS_SELECTOR, ".pager").text)
    assert "after=" in browser.driver.current_url
    table = browser.text("table")
    assert "the gateway" not in table  # offset 1 was on the first page
    assert "10.20.1.4" in table
    assert "10.20.1.2" not in table
    assert "5\u2013254" in browser.text("#free-offsets")
    assert not browser.driver.find_elements(By.LINK_TEXT, "Next page")
    browser.assert_stayed_home()


def test_a_refused_action_says_why_beside_its_button(demo: Demo, browser: Browser) -> None:
    browser.login("ada", PASSWORD)
    east02 = structure_id(demo, "east-web02")
    browser.go(f"#/structure/{east02}")
    browser.title_is("Structure east-web02")
    # someone else starts a job on it meanwhile: the page's button is now refused
    started = demo.ask(
        'mutation ($id: Int!) { doJob(name: "power-cycle", structure: $id) { __typename } }',
        id=east02,
    )
    assert started == {"doJob": {"__typename": "Job"}}
    browser.find('[data-action="destroy"]').click()
    browser.find("dialog[open] button[value=ok]").click()
    error = browser.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-action="destroy"] + .error').text
    )
    assert "job" in error.lower(), error
    assert "(field:" in error, error
    assert browser.driver.current_url.endswith(f"#/structure/{east02}")  # still here
    browser.assert_stayed_home()


def test_keyboard_labels_and_a_phone_width(demo: Demo) -> None:
    with chromium(demo.base, 390, 844) as phone:
        phone.login("ada", PASSWORD)
        phone.go("#/structures")
        phone.title_is("Structures")
        # every control has a label
        unlabelled = phone.driver.execute_script(
            "return [...document.querySelectorAll('input, select, button')]"
            ".filter(e => !(e.labels?.length || e.textContent.trim() || e.ariaLabel))"
            ".map(e => e.outerHTML)"
        )
        assert unlabelled == []
        # nothing is wider than the phone
        assert phone.driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        phone.screenshot("structures-phone")
        # the keyboard: a new page takes the focus to its title; Tab goes on into the page,
        # the focus is drawn; Shift+Tab goes back through the menu, and Enter follows a link
        phone.go("#/")
        phone.title_is("Dashboard")
        phone.wait(lambda d: d.switch_to.active_element.get_attribute("id") == "page-title")
        phone.driver.switch_to.active_element.send_keys(Keys.TAB)
        focused = phone.driver.switch_to.active_element
        assert focused.text == "demo-east"  # the first link of the dashboard's table
        assert focused.value_of_css_property("outline-style") == "solid"
        focused.send_keys(Keys.SHIFT, Keys.TAB)  # back: the header's last control
        assert phone.driver.switch_to.active_element.text == "Log out"
        phone.driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
        assert phone.driver.switch_to.active_element.text == "Webhooks"
        phone.driver.switch_to.active_element.send_keys(Keys.ENTER)
        phone.title_is("Webhooks")
        # the skip link is the first stop of every page
        assert (
            phone.driver.execute_script(
                "return document.querySelector('a[href], button, input, select').className"
            )
            == "skip"
        )
        phone.go("#/foundations")
        phone.title_is("Foundations")
        phone.find("#f-q").send_keys("east", Keys.ENTER)  # a filter submitted from the keyboard
        phone.wait(lambda d: "q=east" in d.current_url)
        phone.title_is("Foundations")
        assert "of 8" in phone.text()  # east's three machines, two VM hosts and three VMs
        phone.assert_stayed_home()


def test_the_dashboard_resumes_from_its_last_cursor_after_a_dropped_connection(
    demo: Demo, browser: Browser
) -> None:
    # the test keeps a hand on the page's sockets (the console itself does not expose them)
    browser.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.sockets = []; const Real = window.WebSocket;"
            "window.WebSocket = function (...a) { const s = new Real(...a);"
            " window.sockets.push(s); return s; };"
        },
    )
    browser.login("ada", PASSWORD)
    browser.wait(lambda d: d.find_element(By.ID, "live").text == "live")
    before = browser.text("#recent-events").count("site demo-west updated")  # the newest ones
    touch = (
        'mutation ($d: String!) { updateSite(name: "demo-west", description: $d) { __typename } }'
    )
    demo.ask(touch, d="seen live")
    browser.wait(lambda d: "site demo-west updated" in d.find_element(By.ID, "recent-events").text)
    browser.collect()
    seen = [json.loads(frame) for frame in browser.frames if '"events"' in frame]
    last = seen[-1]["payload"]["data"]["events"]["cursor"]
    # the connection drops (and cannot come back at once): what happens meanwhile is not lost
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    browser.driver.execute_script("window.sockets.at(-1).close(4000, 'dropped by the test')")
    browser.wait(lambda d: d.find_element(By.ID, "live").text == "reconnecting")
    demo.ask(touch, d="changed while away")
    demo.ask('mutation { updateSite(name: "demo-east", description: "also away") { __typename } }')
    browser.driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions", {**offline, "offline": False}
    )
    browser.wait(lambda d: "site demo-east updated" in d.find_element(By.ID, "recent-events").text)
    shown = browser.text("#recent-events")
    assert shown.count("site demo-west updated") == before + 2, shown  # none missed or twice
    assert browser.text("#live") == "live"
    # it asked for what came after the last cursor it had received
    sent = [
        json.loads(entry["message"])["message"]["params"]["response"]["payloadData"]
        for entry in browser.driver.get_log("performance")
        if '"Network.webSocketFrameSent"' in entry["message"]
    ]
    again = [json.loads(frame) for frame in sent if '"subscribe"' in frame]
    assert again[-1]["payload"]["variables"] == {"after": last}, again


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that takes every delivery."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_demo_link_logs_in_with_its_token_and_hides_it(
    demo: Demo, browser: Browser, receiver: str
) -> None:
    browser.open(f"/ui/#token={demo.token}")
    browser.title_is("Dashboard")
    assert "demo (admin)" in browser.text("#who")
    assert demo.token not in browser.driver.current_url  # out of the address bar at once
    browser.go("#/webhooks")
    browser.title_is("Webhooks")
    assert "no webhook target" in browser.text()  # an admin's view: the tables, not a refusal
    # a real receiver takes the site events: the delivery log shows them, an admin may retry
    created = demo.ask(
        'mutation ($url: String!) { createWebhookTarget(name: "audit", url: $url,'
        ' filter: {objectTypes: ["site"]}) { __typename } }',
        url=receiver,
    )
    assert created == {"createWebhookTarget": {"__typename": "CreatedWebhookTarget"}}, created
    demo.ask('mutation { updateSite(name: "demo", description: "audited") { __typename } }')

    looks = iter(range(1000))

    def delivered(_: object) -> bool:
        browser.go(f"#/webhooks?look={next(looks)}")  # a new address: the page is read again
        browser.title_is("Webhooks")
        return bool(browser.all("td .state-delivered"))

    browser.wait(delivered, timeout=60, message="a delivery")
    assert "audit" in browser.text()
    assert "HTTP 204" in browser.text()
    browser.screenshot("webhooks")
    browser.find('[data-action="retry"]').click()
    assert "posted again to audit" in browser.find("dialog[open]").text
    browser.find("dialog[open] button[value=ok]").click()
    browser.title_is("Webhooks")
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "td .state-delivered"))
    browser.find("#logout").click()
    browser.find("#login-user")
    assert browser.driver.execute_script("return sessionStorage.length") == 0
    browser.assert_stayed_home()


ABORT = '[data-action="abort"]'


def test_pause_resume_and_abort_from_the_job_page(demo: Demo, browser: Browser) -> None:
    browser.login("ada", PASSWORD)
    started = demo.ask(
        'mutation ($id: Int!) { doJob(name: "power-cycle", structure: $id) { ... on Job { id } } }',
        id=structure_id(demo, "west-web03"),
    )
    job_id = started["doJob"]["id"]  # type: ignore[index]
    browser.go(f"#/job/{job_id}")
    browser.title_is(f"Job #{job_id}")

    def act(name: str, promise: str) -> None:
        browser.press(f'[data-action="{name}"]')  # the page redraws as the job moves on
        dialog = browser.find("dialog[open]")
        assert promise in dialog.text, dialog.text
        dialog.find_element(By.CSS_SELECTOR, "button[value=ok]").click()

    act("pause", "stops before its next step")
    browser.wait(lambda d: d.find_element(By.ID, "job-state").text == "paused")
    assert browser.all('[data-action="resume"]')
    assert not browser.all('[data-action="pause"]')
    # Cancel in the dialog does nothing
    browser.find('[data-action="resume"]').click()
    browser.find("dialog[open] button[value=cancel]").click()
    assert browser.text("#job-state") == "paused"
    act("resume", "queued again")
    browser.wait(lambda d: d.find_element(By.ID, "job-state").text in ("queued", "done"))
    if browser.text("#job-state") == "queued":

        def abortable(driver: Any) -> bool:  # unless the job finished meanwhile
            state = driver.find_element(By.ID, "job-state").text
            return state == "done" or bool(driver.find_elements(By.CSS_SELECTOR, ABORT))

        browser.wait(abortable)
        if browser.text("#job-state") != "done":
            act("abort", "cancelled for good")
        browser.wait(lambda d: d.find_element(By.ID, "job-state").text in ("aborted", "done"))
    browser.wait(lambda d: "resumed" in d.find_element(By.ID, "job-log").text)
    assert "paused" in browser.text("#job-log")
    browser.assert_stayed_home()
