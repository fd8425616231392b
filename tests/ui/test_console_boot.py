"""The console's boot-path and live pages in a real Chromium against `contractor demo`: the
leases and discovered machines the boot services report (posted here through the real task
API with a subcontractor token), the discovered hardware page and its actions, a structure's
dependency records, the dashboard's newest events at once, zone texts read when opened, and
every page labelled, keyboard-reachable and phone-wide."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.ui.browser import Browser, chromium
from tests.ui.demo import PASSWORD, Demo, structure_id

UNKNOWN = "52:54:00:aa:bb:01"
LEASED = "10.20.1.50"


def _macs(demo: Demo) -> dict[str, str]:
    found = demo.ask("{ foundations(first: 50) { nodes { locator interfaces { mac } } } }")
    nodes: list[dict[str, Any]] = found["foundations"]["nodes"]  # type: ignore[index]
    # the demo's machines with a NIC (its Complex's VMs have none until they are built)
    return {node["locator"]: node["interfaces"][0]["mac"] for node in nodes if node["interfaces"]}


def _report(mac: str, serial: str) -> dict[str, Any]:
    return {
        "mac": mac,
        "macs": [mac],
        "manufacturer": "QEMU",
        "product": "Standard PC",
        "serial": serial,
        "uuid": None,
        "cpu_count": 4,
        "memory_mib": 8192,
        "disks": [{"name": "vda", "size_bytes": 20_000_000_000}],
        "pci": [{"vendor": "1af4", "device": "1000"}],
    }


@pytest.fixture(scope="module")
def boot_facts(demo: Demo) -> dict[str, Any]:
    """What the demo-east boot services report: a lease of east-sim01's MAC, a machine
    nobody knows and one booted from east-sim02's MAC; and a dependency on east-web01."""
    agent = demo.cli(
        "subcontractor-token", "create", "console-boot", "--site", "demo-east", "--module", "boot"
    ).splitlines()[-1]
    headers = {"Authorization": f"Bearer {agent}"}
    macs = _macs(demo)
    lease = {
        "mac": macs["east-sim01"],
        "address": LEASED,
        "hostname": "east-sim01",
        "starts": "2026-12-07T06:00:00Z",
        "ends": "2026-12-07T07:00:00Z",
        "state": "active",
    }
    with httpx.Client(base_url=f"{demo.base}/api/v1/subcontractor", headers=headers) as agent_api:
        told = agent_api.post("/leases", json={"site": "demo-east", "leases": [lease]})
        assert told.status_code == 200, told.text
        ids = {}
        for mac, serial in ((UNKNOWN, "SN-CONSOLE-1"), (macs["east-sim02"], "SN-CONSOLE-2")):
            reported = agent_api.post(
                "/discovery", json={"site": "demo-east", "report": _report(mac, serial)}
            )
            assert reported.status_code == 201, reported.text
            ids[mac] = reported.json()["discovered"]
    web01 = structure_id(demo, "east-web01")
    made = demo.ask(
        'mutation ($s: Int!) { createDependency(structure: $s, foundation: "west-sim03") {'
        " __typename ... on Dependency { id } } }",
        s=web01,
    )
    dependency = made["createDependency"]
    assert dependency["__typename"] == "Dependency", made  # type: ignore[index]
    return {
        "unknown": ids[UNKNOWN],
        "known": ids[macs["east-sim02"]],
        "dependency": dependency["id"],  # type: ignore[index]
        "web01": web01,
        "macs": macs,
    }


def _act(browser: Browser, name: str, promise: str) -> None:
    browser.find(f'[data-action="{name}"]').click()
    dialog = browser.find("dialog[open]")
    assert promise in dialog.text, dialog.text
    dialog.find_element(By.CSS_SELECTOR, "button[value=ok]").click()


def test_leases_discovered_machines_and_dependencies_on_the_target_pages(
    demo: Demo, browser: Browser, boot_facts: dict[str, Any]
) -> None:
    browser.login("ada", PASSWORD)
    browser.go("#/foundation/east-sim01")
    browser.title_is("Foundation east-sim01")
    leases = browser.text("#s-dhcp-leases + *")
    assert LEASED in leases, leases
    assert "active" in leases
    assert boot_facts["macs"]["east-sim01"] in leases
    browser.driver.execute_script("document.getElementById('s-interfaces').scrollIntoView()")
    browser.screenshot("foundation-boot")
    browser.go("#/foundation/east-sim02")
    browser.title_is("Foundation east-sim02")
    machines = browser.text("#s-discovered-hardware + *")
    assert boot_facts["macs"]["east-sim02"] in machines, machines  # booted from its MAC
    assert "east-sim02" in machines  # matched to it by that MAC
    assert "no lease reported" in browser.text("#s-dhcp-leases + *")
    browser.go(f"#/structure/{boot_facts['web01']}")
    browser.title_is("Structure east-web01")
    records = browser.text("#s-dependencies ~ .table-wrap")
    assert f"#{boot_facts['dependency']} (soft)" in records, records
    assert "waits for it" in records
    assert "foundation west-sim03" in records
    assert LEASED in browser.text("#s-dhcp-leases + *")  # its foundation's lease
    browser.assert_stayed_home()


def test_the_discovered_hardware_page_matches_and_forgets(
    demo: Demo, browser: Browser, boot_facts: dict[str, Any]
) -> None:
    unknown = boot_facts["unknown"]
    browser.login("ada", PASSWORD)
    browser.find('#nav a[href="#/discovered"]').click()
    browser.title_is("Discovered hardware")
    shown = browser.text()
    assert UNKNOWN in shown
    assert boot_facts["macs"]["east-sim02"] in shown
    assert "of 2" in browser.text(".pager")
    browser.screenshot("discovered")
    browser.go("#/discovered?matched=no")
    browser.title_is("Discovered hardware")
    assert "of 1" in browser.text(".pager")
    assert "SN-CONSOLE-1" in browser.text("table")
    browser.driver.find_element(By.LINK_TEXT, f"#{unknown} {UNKNOWN}").click()
    browser.title_is(f"Discovered machine #{unknown}")
    facts = browser.text("#s-facts ~ .fields")
    for fact in ("8192 MiB", "vda 20.0 GB", "1af4:1000", "QEMU"):
        assert fact in facts, facts
    browser.screenshot("discovered-machine")
    # a foundation of another site: refused, in the server's words beside the button
    browser.find("#match-foundation").send_keys("west-sim01")
    _act(browser, "match", 'matched to foundation "west-sim01" of site demo-east')
    refused = browser.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-action="match"] + .error').text
    )
    assert "not of the discovered machine's site" in refused, refused
    machine = "query ($id: Int!) { discoveredMachine(id: $id) { matched } }"
    assert demo.ask(machine, id=unknown) == {"discoveredMachine": {"matched": None}}
    # one of its own site: matched (built already, so not located: the problems say why)
    field = browser.find("#match-foundation")
    field.clear()
    field.send_keys("east-sim03")
    _act(browser, "match", "it is located from this report")
    browser.wait(lambda d: "east-sim03" in d.find_element(By.CSS_SELECTOR, ".fields").text)
    assert demo.ask(machine, id=unknown) == {"discoveredMachine": {"matched": "east-sim03"}}
    # Cancel does nothing; confirmed, the machine is forgotten and the list shown again
    browser.find('[data-action="forget"]').click()
    browser.find("dialog[open] button[value=cancel]").click()
    assert demo.ask(machine, id=unknown) == {"discoveredMachine": {"matched": "east-sim03"}}
    _act(browser, "forget", "Its next report is taken as a new machine")
    browser.title_is("Discovered hardware")
    assert "of 1" in browser.text(".pager")
    assert demo.ask(machine, id=unknown) == {"discoveredMachine": None}
    browser.assert_stayed_home()


def test_a_reader_sees_no_discovery_action_and_the_server_refuses_one(
    demo: Demo, browser: Browser, boot_facts: dict[str, Any]
) -> None:
    known = boot_facts["known"]
    browser.login("rita", PASSWORD)
    browser.go(f"#/discovered/{known}")
    browser.title_is(f"Discovered machine #{known}")
    assert "SN-CONSOLE-2" in browser.text()
    assert browser.all("[data-action]") == []
    assert browser.all("#match-foundation") == []
    answer = browser.run(
        "const api = await import('/ui/api.js');"
        "return (await api.gql(`mutation ($id: Int!) { forgetDiscoveredHardware(id: $id) {"
        " __typename ... on Error { code message } } }`, { id: args[0] }))"
        ".forgetDiscoveredHardware;",
        known,
    )
    assert answer["__typename"] == "ForbiddenError", answer
    still = demo.ask("query ($id: Int!) { discoveredMachine(id: $id) { id } }", id=known)
    assert still == {"discoveredMachine": {"id": known}}
    browser.assert_stayed_home()


def test_the_dashboard_shows_the_newest_events_at_once_then_follows(
    demo: Demo, browser: Browser
) -> None:
    browser.login("ada", PASSWORD)
    first = browser.all("#recent-events li")
    assert 1 <= len(first) <= 25  # the demo's newest events, before anything happens
    browser.wait(lambda d: d.find_element(By.ID, "live").text == "live")
    demo.ask('mutation { updateSite(name: "demo-east", description: "now") { __typename } }')
    browser.wait(
        lambda d: (
            "site demo-east updated" in d.find_element(By.CSS_SELECTOR, "#recent-events li").text
        )
    )
    # the subscription asked for what came after the cursor the first read ended at
    browser.collect()
    sent = [json.loads(frame) for frame in browser.sent]
    (subscribed,) = [frame for frame in sent if frame.get("type") == "subscribe"]
    after = subscribed["payload"]["variables"]["after"]
    newest = demo.ask("{ events(last: 1) { cursor } }")["events"]
    assert int(after) < int(newest["cursor"])  # type: ignore[index]
    browser.assert_stayed_home()


def test_a_zones_text_is_read_when_it_is_opened(demo: Demo, browser: Browser) -> None:
    browser.login("ada", PASSWORD)
    browser.go("#/zones")
    browser.title_is("DNS zones")
    text = browser.find("#zone-demo-test pre.zone")
    assert "SOA" not in (text.get_attribute("textContent") or "")  # no zone text in the list
    assert "Opening reads the zone file" in (text.get_attribute("textContent") or "")
    browser.find("#zone-demo-test summary").click()
    browser.wait(lambda d: "SOA" in (text.get_attribute("textContent") or ""))
    assert "east-web01" in text.text
    browser.assert_stayed_home()


PAGES = [
    ("#/", "Dashboard"),
    ("#/sites?site=demo-east", "Sites"),
    ("#/foundations", "Foundations"),
    ("#/structures", "Structures"),
    ("#/foundation/east-sim01", "Foundation east-sim01"),
    ("#/structure/{web01}", "Structure east-web01"),
    ("#/jobs", "Jobs"),
    ("#/job/1", "Job #1"),
    ("#/blocks", "Address blocks"),
    ("#/block/1", "Address block"),
    ("#/zones?zone=demo.test", "DNS zones"),
    ("#/discovered", "Discovered hardware"),
    ("#/discovered/{known}", "Discovered machine"),
    ("#/webhooks", "Webhooks"),
]

UNLABELLED = (
    "return [...document.querySelectorAll('input, select, button, textarea')]"
    ".filter(e => !(e.labels?.length || e.textContent.trim() || e.ariaLabel"
    " || e.getAttribute('aria-labelledby')))"
    ".map(e => e.outerHTML)"
)


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_every_page_is_labelled_focused_and_fits(
    demo: Demo, boot_facts: dict[str, Any], width: int, height: int
) -> None:
    with chromium(demo.base, width, height) as browser:
        browser.login("ada", PASSWORD)
        for fragment, title in PAGES:
            browser.go(fragment.format(web01=boot_facts["web01"], known=boot_facts["known"]))
            browser.title_is(title)
            assert browser.driver.execute_script(UNLABELLED) == [], fragment
            wide = browser.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert wide <= 0, (fragment, wide)
            # the page's title has the focus; the next Tab goes into the page, drawn
            active = browser.driver.switch_to.active_element
            assert active.get_attribute("id") == "page-title", fragment
            active.send_keys(Keys.TAB)
            focused = browser.driver.switch_to.active_element
            assert focused.get_attribute("id") != "page-title", fragment
            assert focused.value_of_css_property("outline-style") == "solid", fragment
            inside = "return !!document.activeElement.closest('main')"
            reachable = (
                "return !!document.querySelector("
                "'main a[href], main button, main input, main select, main summary')"
            )
            if browser.driver.execute_script(reachable):  # (an operator's webhooks: a refusal)
                assert browser.driver.execute_script(inside), fragment
        if width < 700:
            browser.go("#/discovered")
            browser.title_is("Discovered hardware")
            browser.screenshot("discovered-phone")
        browser.assert_stayed_home()
