"""The layers of a target's configuration, made from its rows, and their merge.

The layer list is the original's (``model-original.md`` §9.3; see ``contractor.services.config``
for the order by kind): blueprint chain, ``_blueprint``, site chain, ``_site``, then what the
target itself adds (foundation, structure or complex attributes, §9.5) and the globals (§9.4).
``Sources.entry`` merges a target's own layers onto the blueprint+site prefix it shares with
others, without copying the prefix.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from contractor.config import merge, parse_key
from contractor.errors import ConfigError
from contractor.models import Foundation, complex_state
from contractor.plugins import foundation_types
from contractor.secret_names import is_secret_name
from contractor.services.config.cache import Entry, Prefix, PrefixKey
from contractor.services.config.rows import Key, Rows
from contractor.settings import Settings

__all__ = ["EPOCH", "NamedLayer", "Sources"]

log = logging.getLogger("contractor.services.config")

NamedLayer = tuple[str, Mapping[str, Any], str]
"""``(kind, mapping, name)``: kind ``"values"`` or ``"attributes"``; see ``contractor.config``."""

EPOCH: Final = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
"""``__last_modified`` when nothing has a timestamp (the original's start value)."""

# Plugin attributes whose names contain one of these are dropped: a configuration is served
# to anything that knows a config UUID and must never carry a credential.


class Sources(Rows):
    """A batch's rows, as layers: per target, its prefix (blueprint and site chains) and its
    tail (its own attributes and the globals)."""

    # -- layers --------------------------------------------------------------------------

    def _prefix_key(self, key: Key) -> PrefixKey:
        kind, ident = key
        if kind == "structure":
            structure = self.structures[ident]
            return (structure.blueprint_id, structure.site_id, self.class_list(key))
        if kind == "foundation":
            foundation = self.foundations[ident]
            return (foundation.blueprint_id, foundation.site_id, self.class_list(key))
        if kind == "site":
            return (None, ident, ())
        if kind == "blueprint":
            return (ident, None, ())
        return (None, self.complexes[ident].site_id, ())

    def class_list(self, key: Key) -> tuple[str, ...]:
        kind, ident = key
        if kind == "structure":
            foundation = self.foundations[self.structures[ident].foundation_id]
        elif kind == "foundation":
            foundation = self.foundations[ident]
        else:
            return ()
        plugin = foundation_types().get(foundation.type)
        return tuple(plugin.class_list) if plugin is not None else ()

    def blueprint_chain(self, blueprint_id: int) -> list[Any]:
        """Post-order over ordered parents; a shared ancestor once per path (§9.3)."""
        order: list[Any] = []

        def visit(node: int) -> None:
            for parent in self.parents.get(node, ()):
                visit(parent)
            order.append(self.blueprints[node])

        visit(blueprint_id)
        return order

    def site_chain(self, site_id: int) -> list[Any]:
        """The root first, the site last."""
        chain: list[Any] = []
        current: int | None = site_id
        while current is not None and len(chain) <= len(self.sites):
            site = self.sites[current]
            chain.append(site)
            current = site.parent_id
        return chain[::-1]

    def _prefix_parts(self, prefix: PrefixKey) -> tuple[list[NamedLayer], dt.datetime]:
        blueprint_id, site_id, _classes = prefix
        layers: list[NamedLayer] = []
        stamps: list[dt.datetime] = []
        if blueprint_id is not None:
            chain = self.blueprint_chain(blueprint_id)
            layers += [("values", bp.config_values, f"blueprint {bp.name}") for bp in chain]
            layers.append(("attributes", {"_blueprint": chain[-1].name}, "_blueprint"))
            stamps += [bp.updated for bp in chain]
        if site_id is not None:
            sites = self.site_chain(site_id)
            layers += [("values", site.config_values, f"site {site.name}") for site in sites]
            layers.append(("attributes", {"_site": sites[-1].name}, "_site"))
            stamps += [site.updated for site in sites]
        return layers, _newest(*stamps)

    def prefix_layers(self, key: Key) -> list[NamedLayer]:
        return self._prefix_parts(self._prefix_key(key))[0]

    def tail_layers(self, key: Key, settings: Settings, now: dt.datetime) -> list[NamedLayer]:
        """Everything after the blueprint and site chains, globals included."""
        layers, last_modified = self._tail_parts(key)
        prefix_modified = self._prefix_parts(self._prefix_key(key))[1]
        layers.append(
            (
                "attributes",
                _globals(_newest(last_modified, prefix_modified), now, settings),
                "globals",
            )
        )
        return layers

    def _tail_parts(self, key: Key) -> tuple[list[NamedLayer], dt.datetime]:
        kind, ident = key
        if kind == "structure":
            structure = self.structures[ident]
            foundation = self.foundations[structure.foundation_id]
            name = f"structure {structure.hostname}"
            return [
                (
                    "attributes",
                    self.foundation_attributes(foundation),
                    f"foundation {foundation.locator}",
                ),
                ("values", structure.config_values, name),
                ("attributes", self.structure_attributes(structure), f"{name} attributes"),
            ], _newest(foundation.updated, structure.updated)
        if kind == "foundation":
            foundation = self.foundations[ident]
            layers: list[NamedLayer] = [
                (
                    "attributes",
                    self.foundation_attributes(foundation),
                    f"foundation {foundation.locator}",
                )
            ]
            structure_id = self.structure_of_foundation.get(foundation.id)
            if structure_id is not None:
                layers.append(("attributes", {"_structure_id": structure_id}, "_structure_id"))
            return layers, foundation.updated
        if kind == "complex":
            complex_ = self.complexes[ident]
            return [
                (
                    "attributes",
                    self.complex_attributes(complex_),
                    f"complex {complex_.name}",
                )
            ], complex_.updated
        return [], EPOCH

    # -- attributes (§9.5) ---------------------------------------------------------------

    def foundation_attributes(self, foundation: Foundation) -> dict[str, Any]:
        provisioning = self._provisioning_interface(foundation.id)
        plugin = foundation_types().get(foundation.type)
        attributes: dict[str, Any] = {
            "_provisioning_interface": provisioning.physical_location if provisioning else None,
            "_provisioning_interface_mac": provisioning.mac if provisioning else None,
            "_foundation_id": foundation.locator,
            "_foundation_type": foundation.type,
            "_foundation_state": foundation.state,
            "_foundation_class_list": list(plugin.class_list) if plugin else [],
            "_foundation_locator": foundation.locator,
            "_foundation_id_map": foundation.id_map,
            "_console": "console",
        }
        if plugin is not None:
            for name, value in plugin.config_attributes(foundation).items():
                if is_secret_name(name):
                    log.warning(
                        "foundation type %r offers config attribute %r, which looks like a "
                        "secret; it is left out of the configuration",
                        foundation.type,
                        name,
                    )
                    continue
                attributes[name] = value
        return attributes

    def _provisioning_interface(self, foundation_id: int) -> Any:
        for interface in self.real_interfaces.get(foundation_id, ()):
            if interface.is_provisioning:
                return interface
        return None

    def structure_attributes(self, structure: Any) -> dict[str, Any]:
        site = self.sites[structure.site_id]
        domain = self._zone_fqdn(site.zone_id) if site.zone_id is not None else None
        addresses = self.addresses.get(structure.id, [])
        real = self.real_interfaces.get(structure.foundation_id, [])
        abstract = self.abstract_interfaces.get(structure.id, [])
        provisioning = self._provisioning_interface(structure.foundation_id)
        primary = next((a for a in addresses if a.is_primary), None)

        provisioning_address = None
        if provisioning is not None:
            on_it = [a for a in addresses if a.interface_name == provisioning.name]
            if primary is not None and primary.interface_name == provisioning.name:
                provisioning_address = self._address_dict(primary)
            elif on_it:
                provisioning_address = self._address_dict(on_it[0])

        primary_interface: Any = None
        if primary is not None:
            primary_interface = next(
                (i for i in real if i.name == primary.interface_name),
                next((i for i in abstract if i.name == primary.interface_name), None),
            )

        interface_map: dict[str, Any] = {}
        for interface in real:
            config = self._interface_config(interface.name, interface.network_id)
            config["mac"] = interface.mac
            config["physical_location"] = interface.physical_location
            config["link_name"] = interface.link_name
            config["address_list"] = self._address_list(addresses, interface)
            interface_map[interface.name] = config
        for interface in abstract:
            config = self._interface_config(interface.name, interface.network_id)
            config["address_list"] = self._address_list(addresses, interface)
            interface_map[interface.name] = config

        return {
            "_structure_id": structure.id,
            "_structure_state": "planned" if structure.built_at is None else "built",
            "_structure_config_uuid": structure.config_uuid,
            "_hostname": structure.hostname,
            "_domain_name": domain,
            "_fqdn": f"{structure.hostname}.{domain}" if domain else structure.hostname,
            "_provisioning_interface": provisioning.name if provisioning else None,
            "_provisioning_interface_mac": provisioning.mac if provisioning else None,
            "_provisioning_address": provisioning_address,
            "_primary_interface": primary_interface.name if primary_interface else None,
            "_primary_interface_mac": getattr(primary_interface, "mac", None),
            "_primary_address": self._address_dict(primary) if primary is not None else None,
            "_interface_map": interface_map,
        }

    def complex_attributes(self, complex_: Any) -> dict[str, Any]:
        members = self.complex_members.get(complex_.id, [])
        built = sum(1 for member in members if member.built_at is not None)
        return {
            "_complex_id": complex_.id,
            "_complex_name": complex_.name,
            "_complex_state": complex_state(len(members), built, complex_.built_percentage),
            "_complex_built_percentage": complex_.built_percentage,
            "_complex_members": [member.hostname for member in members],
        }

    def _zone_fqdn(self, zone_id: int) -> str:
        labels: list[str] = []
        current: int | None = zone_id
        while current is not None and len(labels) <= len(self.zones):
            zone = self.zones[current]
            labels.append(zone.name)
            current = zone.parent_id
        return ".".join(labels)

    def _interface_config(self, name: str, network_id: int | None) -> dict[str, Any]:
        network = self.networks.get(network_id) if network_id is not None else None
        config: dict[str, Any] = {"name": name, "network": network.name if network else None}
        if network is not None and network.mtu is not None:
            config["mtu"] = network.mtu
        return config

    def _address_list(self, addresses: list[Any], interface: Any) -> list[dict[str, Any]]:
        result = []
        for address in addresses:
            if address.interface_name != interface.name:
                continue
            item = self._address_dict(address)
            block_id = self._location(address)[0]
            if interface.network_id is not None and block_id is not None:
                vlan = self.vlans.get((interface.network_id, block_id))
                if vlan is not None:
                    item["vlan"] = vlan
            result.append(item)
        return result

    def _location(self, address: Any) -> tuple[int | None, int | None]:
        """(block id, offset) of an address, following its pointer."""
        if address.pointer_id is not None and address.pointer_id in self.pointed:
            target = self.pointed[address.pointer_id]
            return target.address_block_id, target.offset
        return address.address_block_id, address.offset

    def _address_dict(self, address: Any) -> dict[str, Any]:
        """The original's ``Address.as_dict`` (alias index 0, the interface's own address,
        is ``None`` there)."""
        block_id, offset = self._location(address)
        ip = netmask = subnet = gateway = prefix = None
        if block_id is not None and offset is not None:
            block = self.blocks[block_id]
            network = self._ip_networks.get(block_id)
            if network is None:
                network = ipaddress.ip_network(f"{block.subnet}/{block.prefix}")
                self._ip_networks[block_id] = network
            ip = str(network.network_address + offset)
            netmask = str(network.netmask)
            subnet = block.subnet
            prefix = block.prefix
            if block.gateway_offset is not None:
                gateway = str(network.network_address + block.gateway_offset)
        return {
            "address": ip,
            "netmask": netmask,
            "prefix": prefix,
            "subnet": subnet,
            "gateway": gateway,
            "auto": True,
            "alias_index": address.alias_index or None,
            "primary": bool(address.is_primary),
        }

    # -- composing -----------------------------------------------------------------------

    def prefix(self, key: Key, prefixes: dict[PrefixKey, Prefix]) -> Prefix:
        prefix_key = self._prefix_key(key)
        found = prefixes.get(prefix_key)
        if found is None:
            layers, last_modified = self._prefix_parts(prefix_key)
            values = merge(layers, prefix_key[2])
            found = prefixes[prefix_key] = Prefix(
                values=values,
                volatile=_mentions_timestamp(values),
                last_modified=last_modified,
            )
        return found

    def entry(
        self,
        key: Key,
        settings: Settings,
        now: dt.datetime,
        prefixes: dict[PrefixKey, Prefix],
    ) -> Entry:
        """Merge ``key``'s configuration on top of its (shared) blueprint+site prefix."""
        prefix = self.prefix(key, prefixes)
        tail, last_modified = self._tail_parts(key)
        tail.append(
            (
                "attributes",
                _globals(_newest(prefix.last_modified, last_modified), now, settings),
                "globals",
            )
        )
        values = _merge_onto(prefix.values, tail, self._prefix_key(key)[2])
        volatile = prefix.volatile or any(_mentions_timestamp(layer[1]) for layer in tail)
        return Entry(kind=key[0], merged=values, volatile=volatile)


def _newest(*stamps: dt.datetime | None) -> dt.datetime:
    return max((stamp for stamp in stamps if stamp is not None), default=EPOCH)


def _mentions_timestamp(values: Mapping[str, Any]) -> bool:
    """Whether any value (at any depth) mentions ``__timestamp``; then the rendered result
    changes on every read and is not kept. ``repr`` is one C-speed walk; a false positive
    (a nested key, or text that is no template) only costs a re-render."""
    return "__timestamp" in repr(list(values.values()))


def _merge_onto(
    base: Mapping[str, Any], layers: Sequence[NamedLayer], class_list: tuple[str, ...]
) -> dict[str, Any]:
    """``merge([("attributes", base), *layers])`` without deep-copying all of ``base``.

    The result shares the values of ``base`` that no layer touches (so ``base``, a cached
    prefix, must never be mutated, and neither may the result's nested values). Attribute
    layers only replace keys; a values layer may change a value in place, so the keys it
    names are copied and merged on their own, then put back: kept keys stay where they are,
    new keys are appended in the order the layer set them, and masked keys go. A values
    layer deletes a key only with ``~``, which runs last in its layer, so a deleted key is
    never set again by the same layer and this order is exactly ``merge``'s.
    """
    result = dict(base)
    for kind, mapping, name in layers:
        if kind == "attributes":
            for key, value in mapping.items():
                result[key] = _copy(value)
            continue
        try:
            names = {parse_key(raw).name for raw in mapping}
        except ConfigError:
            names = set(result)  # let merge report the bad key, naming the layer
        subset = {key: result[key] for key in names if key in result}
        merged = merge([("attributes", subset, "base"), (kind, mapping, name)], class_list)
        for key in subset:
            if key not in merged:
                del result[key]
        result.update(merged)
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _globals(last_modified: dt.datetime, now: dt.datetime, settings: Settings) -> dict[str, Any]:
    """The ``__`` globals (§9.4), in the original's order."""
    return {
        "__last_modified": last_modified,
        "__timestamp": now,
        "__contractor_host": settings.contractor_url,
        "__pxe_location": settings.pxe_location,
    }
