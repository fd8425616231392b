"""A small inventory with every DNS case: nested zones with glue, IPv4 and IPv6, an
interface alias, a host without a primary address, a pointer address, a /22 (four /24
reverse zones) and a /26 (RFC 2317 classless delegation), and zone entries."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Address, AddressBlock, Site, Structure, Zone
from contractor.services import addresses, directory, network
from tests.factories import (
    make_block,
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
)


@dataclass
class Lab:
    example: Zone
    lab: Zone
    dc1: Site
    dc2: Site
    blocks: dict[str, AddressBlock]
    structures: dict[str, Structure] = field(default_factory=dict)
    # every forward name (FQDN) -> its IP; every IP with a PTR -> the name it points to
    forward: dict[str, str] = field(default_factory=dict)
    reverse: dict[str, str] = field(default_factory=dict)


async def build_lab(session: AsyncSession) -> Lab:
    example = await directory.create_zone(
        session, name="example", nameservers=["ns1.example"], soa_email="hostmaster@example"
    )
    lab_zone = await directory.create_zone(
        session, name="lab", parent=example, nameservers=["ns1.lab.example", "ns1.example"]
    )
    dc1 = await make_site(session, "dc1", zone=example)
    dc2 = await make_site(session, "dc2", zone=lab_zone)
    blocks = {
        "v4": await make_block(session, dc1, "10.0.0.0/24", name="v4"),
        "v6": await make_block(session, dc1, "2001:db8:1::/64", name="v6"),
        "wide": await make_block(session, dc2, "10.1.0.0/22", name="wide"),
        "small": await make_block(session, dc2, "192.0.2.64/26", name="small"),
    }
    lab = Lab(example, lab_zone, dc1, dc2, blocks)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])

    async def host(site: Site, hostname: str) -> Structure:
        foundation = await make_foundation(session, site, fbp)
        structure = await make_structure(session, site, foundation, sbp, hostname=hostname)
        lab.structures[f"{hostname}.{site.name}"] = structure
        return structure

    async def address(
        structure: Structure,
        block: str,
        offset: int,
        interface: str,
        alias: int = 0,
        primary: bool = False,
    ) -> Address:
        made = await addresses.create_address(
            session,
            structure=structure,
            block=blocks[block],
            offset=offset,
            interface_name=interface,
            alias_index=alias,
            is_primary=primary,
        )
        zone = "example" if structure.site_id == dc1.id else "lab.example"
        ip = str(network.ip_at(blocks[block], offset))
        label = directory.address_label(interface, alias)
        lab.forward[f"{label}.{structure.hostname}.{zone}."] = ip
        own = f"{label}.{structure.hostname}.{zone}."
        if primary:
            lab.forward[f"{structure.hostname}.{zone}."] = ip
            own = f"{structure.hostname}.{zone}."
        lab.reverse[ip] = own
        return made

    ns1 = await host(dc1, "ns1")
    await address(ns1, "v4", 2, "eth0", primary=True)
    web1 = await host(dc1, "web1")
    web_eth0 = await address(web1, "v4", 10, "eth0", primary=True)
    await address(web1, "v4", 11, "eth0", alias=1)
    await address(web1, "v6", 0x10, "eth1")
    nopri = await host(dc1, "nopri")
    await address(nopri, "v4", 20, "eth0")
    lab_ns = await host(dc2, "ns1")
    await address(lab_ns, "small", 2, "eth0", primary=True)  # 192.0.2.66
    db1 = await host(dc2, "db1")
    await address(db1, "wide", 2 * 256 + 5, "bond0", primary=True)  # 10.1.2.5
    await address(db1, "small", 6, "IPMI_0")  # 192.0.2.70, named ipmi-0.db1
    # A pointer address shares web1's IP: a forward name, but no second PTR.
    session.add(
        Address(structure_id=db1.id, interface_name="vip", alias_index=0, pointer_id=web_eth0.id)
    )
    await session.flush()
    lab.forward["vip.db1.lab.example."] = "10.0.0.10"

    for kind, name, kwargs in [
        ("CNAME", "www", {"target": "web1"}),
        ("MX", "@", {"target": "web1", "priority": 10}),
        ("SRV", "_http._tcp", {"target": "web1", "priority": 0, "weight": 5, "port": 80}),
        ("TXT", "@", {"text": "v=spf1 -all"}),
    ]:
        await directory.create_entry(session, zone=example, type=kind, name=name, **kwargs)
    return lab


def ptr_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."
