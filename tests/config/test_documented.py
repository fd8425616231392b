"""The documented examples (T3kton docs, "Configuration Values") and a whole Structure's
layer stack in the order of model-original.md §9.3, through ``merge`` then ``render``."""

from __future__ import annotations

import datetime
from typing import Any

from contractor.config import explain, merge, render, render_template


def test_docs_jinja_example() -> None:
    values = {
        "root_zone": "myservice.com",
        "dns_search": ["site1.{{ root_zone }}", "{{ root_zone }}"],
        "dns_zone": "site1.{{ root_zone }}",
    }
    assert render(values) == {
        "root_zone": "myservice.com",
        "dns_search": ["site1.myservice.com", "myservice.com"],
        "dns_zone": "site1.myservice.com",
    }


def test_docs_filter_example() -> None:
    values = {
        "dns_search": [
            "site1.{{ root_zone|default('.test') }}",
            "{{ root_zone|default('.test') }}",
        ],
        "dns_zone": "site1.{{ root_zone|default('.test') }}",
    }
    assert render(values) == {"dns_search": ["site1..test", ".test"], "dns_zone": "site1..test"}


def test_docs_forced_second_round_example() -> None:
    assert render({"a": "c", "b": "a", "d": '{{ "{{" }}{{b}}}}'}) == {"a": "c", "b": "a", "d": "c"}


ROOT = {
    "dns_servers": ["10.0.0.20", "10.0.0.21"],
    "dns_search": ["myservice.com"],
    "dns_zone": "myservice.com",
}
SITE1 = {"<dns_search": ["site1.myservice.com"], "dns_zone": "site1.myservice.com"}
WEB_BP = {"distro": "xenial", "extra_packages": ["apache2", "python-django", "postgres-server"]}


def test_docs_site_tree_example() -> None:
    layers: list[Any] = [
        ("values", WEB_BP, "blueprint web"),
        ("attributes", {"_blueprint": "web"}),
        ("values", ROOT, "site root"),
        ("values", SITE1, "site site1"),
        ("attributes", {"_site": "site1"}),
        ("attributes", {"_foundation_locator": "d2r050u20"}),
        ("values", {}, "structure"),
        ("attributes", {"_hostname": "web1"}),
    ]
    assert merge(layers, []) == {
        "distro": "xenial",
        "extra_packages": ["apache2", "python-django", "postgres-server"],
        "_blueprint": "web",
        "dns_servers": ["10.0.0.20", "10.0.0.21"],
        "dns_search": ["site1.myservice.com", "myservice.com"],
        "dns_zone": "site1.myservice.com",
        "_site": "site1",
        "_foundation_locator": "d2r050u20",
        "_hostname": "web1",
    }
    # Without the '<' the child overwrites instead of prepending.
    plain = [*layers[:3], ("values", {"dns_search": ["site1.myservice.com"]})]
    assert merge(plain, [])["dns_search"] == ["site1.myservice.com"]


def structure_layers() -> list[Any]:
    """A Structure per §9.3: structure blueprint chain (parents first), ``_blueprint``, site
    chain (root first), ``_site``, foundation attributes, structure config_values, structure
    attributes, job ids, then the globals."""
    return [
        ("values", {"ntp": "bp-parent", "pkgs": ["base"], "mtu": 1500}, "blueprint linux"),
        ("values", {">pkgs": ["nginx"], "role": "web", "disk:VCenter": "thin"}, "blueprint web"),
        ("attributes", {"_blueprint": "web"}, "_blueprint"),
        ("values", {"ntp": "site-root", "domain": "example.com", "mtu": 9000}, "site root"),
        ("values", {"<dns_search": "dc1.{{ domain }}", "dns_search": ["{{ domain }}"]}, "dc1"),
        ("attributes", {"_site": "dc1"}, "_site"),
        (
            "attributes",
            {"_foundation_id": "d2r050u20", "_provisioning_interface": "eth0"},
            "foundation",
        ),
        ("values", {"~mtu": None, "ntp:VCenter": "vcenter-ntp", "hostname": "nope"}, "structure"),
        (
            "attributes",
            {
                "_hostname": "web1",
                "_fqdn": "{{ _hostname }}.{{ domain }}",
                "_provisioning_interface": "ens1",
            },
            "structure attributes",
        ),
        ("attributes", {"_structure_job_id": None, "_foundation_job_id": None}, "jobs"),
        (
            "attributes",
            {
                "__last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
                "__contractor_host": "http://contractor",
                "__pxe_location": "http://static/pxe/",
            },
            "globals",
        ),
    ]


def test_a_structure_config_end_to_end() -> None:
    config = render(merge(structure_layers(), ["VCenter", "VM"]))
    assert config["ntp"] == "vcenter-ntp"  # structure values, filtered by class, win
    assert config["pkgs"] == ["base", "nginx"]
    assert config["disk"] == "thin"
    assert "mtu" not in config  # masked by the structure
    assert config["dns_search"] == ["dc1.example.com", "example.com"]
    assert config["_fqdn"] == "web1.example.com"
    assert config["_provisioning_interface"] == "ens1"  # structure attributes come last
    assert config["hostname"] == "nope"
    assert config["__last_modified"] == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def test_a_structure_config_without_classes_and_its_provenance() -> None:
    layers = structure_layers()
    config = merge(layers, [])
    assert config["ntp"] == "site-root"  # the site overrides the blueprint
    assert "disk" not in config
    why = explain(layers, [])
    assert why.keys["ntp"].set_by == "site root"
    assert [c.layer for c in why.keys["ntp"].history] == [
        "blueprint linux",
        "site root",
        "structure",
    ]
    assert why.masked["mtu"].masked_by == "structure"
    assert why.masked["mtu"].value == 9000
    assert why.keys["pkgs"].set_by == "blueprint linux"
    assert [c.layer for c in why.keys["pkgs"].changes] == ["blueprint web"]
    assert {c.original_key for c in why.filtered} == {"disk:VCenter", "ntp:VCenter"}


def test_a_boot_script_with_the_structure_config() -> None:
    script = "#!ipxe\n\nkernel {{ __pxe_location }}vmlinuz hostname={{ _fqdn }}\n"
    text = render_template(script, merge(structure_layers(), []))
    assert text == "#!ipxe\n\nkernel http://static/pxe/vmlinuz hostname=web1.example.com"
