"""Networks, address blocks and addresses: overlap, bounds, uniqueness and allocation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, Exhausted, InUse, InvalidInput, NotFound
from contractor.models import AddressBlock, BaseAddress
from contractor.services import addresses, network
from tests.factories import make_block, make_site, make_stack


async def _count(session: AsyncSession, model: type) -> int:
    return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_block_is_normalised(session: AsyncSession) -> None:
    site = await make_site(session)
    # Host bits were once cleared quietly (10.1.2.77/23 became 10.1.2.0/23): now refused,
    # naming the field and the network it would be (issue 17).
    with pytest.raises(
        InvalidInput, match=r"'10\.1\.2\.77/23' has host bits set: the network is 10\.1\.2\.0/23"
    ) as e:
        await make_block(session, site, "10.1.2.77/23", gateway_offset=1)
    assert e.value.field == "subnet"
    with pytest.raises(InvalidInput, match=r"the network is 2001:db8::/64"):
        await make_block(session, site, "2001:db8::1/64")
    assert await _count(session, AddressBlock) == 0
    block = await make_block(session, site, "10.1.2.0/23", gateway_offset=1)
    assert (block.subnet, block.prefix, block.version) == ("10.1.2.0", 23, 4)
    assert network.block_bounds(block) == (1, 510)
    assert str(network.gateway(block)) == "10.1.2.1"
    v6 = await make_block(session, site, "2001:db8::/64")
    assert (v6.subnet, v6.version) == ("2001:db8::", 6)
    assert network.block_bounds(v6) == (1, 2**64 - 2)


@pytest.mark.parametrize(
    ("prefix", "version", "bounds"),
    [(24, 4, (1, 254)), (31, 4, (0, 1)), (32, 4, (0, 0)), (127, 6, (0, 1)), (128, 6, (0, 0))],
)
def test_offset_bounds(prefix: int, version: int, bounds: tuple[int, int]) -> None:
    assert network.offset_bounds(prefix, version) == bounds


@pytest.mark.parametrize(
    ("existing", "new", "how"),
    [
        ("10.0.0.0/16", "10.0.5.0/24", "contains"),  # the original's missed case
        ("10.0.5.0/24", "10.0.0.0/16", "lies inside"),
        ("10.0.0.0/24", "10.0.0.0/24", "contains"),
        ("10.0.0.0/23", "10.0.1.0/24", "contains"),
        ("2001:db8::/48", "2001:db8:0:1::/64", "contains"),
    ],
)
async def test_overlap_in_one_site_is_refused(
    session: AsyncSession, existing: str, new: str, how: str
) -> None:
    site = await make_site(session)
    await make_block(session, site, existing, name="first")
    with pytest.raises(Conflict, match=f"overlaps address block 'first'.*{how}"):
        await make_block(session, site, new, name="second")
    assert await _count(session, AddressBlock) == 1


async def test_overlap_across_sites_and_families_is_fine(session: AsyncSession) -> None:
    one, two = await make_site(session), await make_site(session)
    await make_block(session, one, "10.0.0.0/16")
    await make_block(session, two, "10.0.5.0/24")
    await make_block(session, one, "10.1.0.0/24")  # adjacent, not overlapping
    await make_block(session, one, "::ffff:10.0.0.0/120")  # IPv6 family is separate
    assert await _count(session, AddressBlock) == 4


@pytest.mark.parametrize(
    ("subnet", "gateway", "message"),
    [
        ("10.0.0.0/24", 0, "outside the usable offsets 1..254"),
        ("10.0.0.0/24", 255, "outside the usable offsets 1..254"),
        ("10.0.0.1/32", 0, "single-address block cannot have a gateway"),
        ("10.0.0.0", None, "needs a prefix length"),
        ("10.0.0.0/33", None, "not a valid network"),
        ("not-an-ip/24", None, "not a valid network"),
        ("0.0.0.0/0", None, "prefix must be at least 1"),
    ],
)
async def test_bad_blocks(
    session: AsyncSession, subnet: str, gateway: int | None, message: str
) -> None:
    site = await make_site(session)
    with pytest.raises(InvalidInput, match=message):
        await make_block(session, site, subnet, gateway_offset=gateway)
    assert await _count(session, AddressBlock) == 0


async def test_addresses_and_their_rules(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, "192.168.0.0/29", gateway_offset=1)
    address = await addresses.create_address(
        session, structure=structure, block=block, offset=2, interface_name="eth0", is_primary=True
    )
    assert str(network.ip_at(block, address.offset or 0)) == "192.168.0.2"
    with pytest.raises(Conflict, match="is the gateway"):
        await addresses.create_reserved_address(session, block=block, offset=1, reason="gw")
    with pytest.raises(Conflict, match=r"already allocated to structure '.*' interface 'eth0'"):
        await addresses.create_reserved_address(session, block=block, offset=2, reason="x")
    with pytest.raises(InvalidInput, match=r"outside the usable offsets 1..6"):
        await addresses.create_dynamic_address(session, block=block, offset=7)
    with pytest.raises(Conflict, match="alias index 0"):
        await addresses.create_address(
            session, structure=structure, block=block, offset=3, interface_name="eth0"
        )
    with pytest.raises(Conflict, match="already has a primary address"):
        await addresses.create_address(
            session,
            structure=structure,
            block=block,
            offset=3,
            interface_name="eth1",
            is_primary=True,
        )
    alias = await addresses.create_address(
        session, structure=structure, block=block, offset=3, interface_name="eth0", alias_index=1
    )
    assert alias.alias_index == 1
    assert await _count(session, BaseAddress) == 2


async def test_same_interface_name_on_two_structures(session: AsyncSession) -> None:
    """Uniqueness is per structure (the original made it global)."""
    site, _, one = await make_stack(session)
    _, _, two = await make_stack(session)
    block = await make_block(session, site)
    for structure in (one, two):
        await addresses.create_address(
            session,
            structure=structure,
            block=block,
            offset=10 + structure.id % 100,
            interface_name="eth0",
        )
    assert await _count(session, BaseAddress) == 2


async def test_primary_must_be_in_own_site(session: AsyncSession) -> None:
    _, _, structure = await make_stack(session)
    elsewhere = await make_block(session, await make_site(session))
    with pytest.raises(InvalidInput, match="structure's own site"):
        await addresses.create_address(
            session, block=elsewhere, structure=structure, interface_name="eth0", is_primary=True
        )
    await addresses.create_address(
        session, block=elsewhere, structure=structure, interface_name="eth0"
    )


async def test_next_address_takes_the_lowest_free_offset(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, "10.9.0.0/29", gateway_offset=2)
    await addresses.create_reserved_address(session, block=block, offset=4, reason="printer")
    got = []
    for index in range(4):
        address = await addresses.create_address(
            session, block=block, structure=structure, interface_name="eth0", alias_index=index
        )
        got.append(address.offset)
    assert got == [1, 3, 5, 6]
    with pytest.raises(Exhausted, match="has no free address"):
        await addresses.create_address(
            session, block=block, structure=structure, interface_name="eth0", alias_index=9
        )


async def test_next_address_fills_holes(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, "10.9.0.0/24")
    made = [
        await addresses.create_address(
            session, block=block, structure=structure, interface_name="eth0", alias_index=i
        )
        for i in range(5)
    ]
    await addresses.delete_address(session, made[2])
    again = await addresses.create_address(
        session, block=block, structure=structure, interface_name="eth1"
    )
    assert again.offset == 3


@pytest.mark.parametrize(("subnet", "offsets"), [("10.0.0.8/31", [0, 1]), ("10.0.0.9/32", [0])])
async def test_small_blocks(session: AsyncSession, subnet: str, offsets: list[int]) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, subnet)
    got = [
        (
            await addresses.create_address(
                session, block=block, structure=structure, interface_name="p", alias_index=i
            )
        ).offset
        for i in range(len(offsets))
    ]
    assert got == offsets
    assert (await addresses.block_usage(session, block)).free == 0


async def test_usage_and_lookup(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, "10.7.0.0/24", gateway_offset=1)
    await addresses.create_address(session, block=block, structure=structure, interface_name="eth0")
    await addresses.create_dynamic_address(session, block=block, offset=100)
    usage = await addresses.block_usage(session, block)
    assert (usage.total, usage.static, usage.reserved, usage.dynamic) == (254, 1, 1, 1)
    found = await addresses.lookup_address(session, "10.7.0.2")
    assert found.structure_id == structure.id
    with pytest.raises(NotFound):
        await addresses.lookup_address(session, "10.7.0.3")
    with pytest.raises(InvalidInput, match="not an IP address"):
        await addresses.lookup_address(session, "10.7.0")


async def test_block_update_and_delete_rules(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, "10.5.0.0/24", name="blk")
    await addresses.create_address(
        session, structure=structure, block=block, offset=200, interface_name="eth0"
    )
    with pytest.raises(Conflict, match=r"would fall outside 10.5.0.0/25"):
        await network.update_address_block(session, block, subnet="10.5.0.0/25")
    with pytest.raises(Conflict, match="already allocated"):
        await network.update_address_block(session, block, gateway_offset=200)
    await network.update_address_block(session, block, subnet="10.6.0.0/23")
    assert block.cidr == "10.6.0.0/23"
    with pytest.raises(InUse, match="address block 'blk' is still used by 1 addresses"):
        await network.delete_address_block(session, block)


async def test_networks(session: AsyncSession) -> None:
    site = await make_site(session)
    net = await network.create_network(session, site=site, name="vmbr0.20", mtu=9000)
    with pytest.raises(Conflict):
        await network.create_network(session, site=site, name="vmbr0.20")
    with pytest.raises(InvalidInput, match="mtu must be from 512 to 9022"):
        await network.create_network(session, site=site, name="jumbo", mtu=9100)
    with pytest.raises(InvalidInput, match="network name"):
        await network.create_network(session, site=site, name="a.12345")
    block = await make_block(session, site)
    link = await network.link_address_block(session, network=net, block=block, vlan=0)
    assert link.vlan is None
    with pytest.raises(InvalidInput, match="vlan must be from 1 to 4095"):
        await network.link_address_block(session, network=net, block=block, vlan=4096)
    other_block = await make_block(session, await make_site(session))
    with pytest.raises(InvalidInput, match="different sites"):
        await network.link_address_block(session, network=net, block=other_block)
