"""The configuration of a target, from the database: its layers, the composed map, a cache.

``config_layers`` builds the exact layer list of the original (``model-original.md`` §9.3) for
a Site, a Foundation or Structure BluePrint, a Foundation, a Structure and a Complex::

    Site              site chain (root first), _site
    BluePrint         blueprint chain (post-order over ordered parents), _blueprint
    Foundation        its blueprint chain, _blueprint, its site chain, _site,
                      foundation attributes, _structure_id (when it carries a structure)
    Structure         its blueprint chain, _blueprint, its site chain, _site,
                      foundation attributes, structure config_values, structure attributes
    Complex           its site chain, _site, complex attributes   (the original refuses)

and always the globals last (``__last_modified``, ``__timestamp``, ``__contractor_host``,
``__pxe_location``). The Foundation's blueprint is not part of a Structure's configuration; the
class list for ``:Class`` keys is the foundation type's (empty for Sites, BluePrints and
Complexes). Job ids (``_structure_job_id``, ``_foundation_job_id``) join the attributes when
the job engine lands.

``composed_config`` merges (and, for Foundations, Structures and Complexes, renders) the layers;
``composed_configs`` does it for many targets with a fixed number of queries; ``explain_config``
reports where each key comes from.

Caching. A ``ConfigCache`` (one per process, in the app's ``AppState``) keeps composed
configurations and the merged blueprint+site prefixes they share, tagged with the *config
generation*: a counter in the ``config_generation`` table that every service changing a
configuration source bumps in the same transaction (``config_sources_changed``, bumped just
before the transaction commits). A reader reads the counter first (one indexed single-row
query) and uses the cache only while it matches, so a change committed by any process is seen
by every process at its next read; a session holding uncommitted changes bypasses the cache.
"""

from contractor.services.config.cache import ConfigCache
from contractor.services.config.compose import (
    composed_config,
    composed_configs,
    config_layers,
    explain_config,
)
from contractor.services.config.generation import (
    CONFIG_CHANNEL,
    config_changed,
    config_sources_changed,
    current_generation,
    install_generation_bump,
)
from contractor.services.config.layers import NamedLayer
from contractor.services.config.lookups import (
    ConfigListing,
    boot_pxe,
    list_structure_configs,
    structure_by_config_uuid,
)
from contractor.services.config.rows import ConfigTarget

__all__ = [
    "CONFIG_CHANNEL",
    "ConfigCache",
    "ConfigListing",
    "ConfigTarget",
    "NamedLayer",
    "boot_pxe",
    "composed_config",
    "composed_configs",
    "config_changed",
    "config_layers",
    "config_sources_changed",
    "current_generation",
    "explain_config",
    "install_generation_bump",
    "list_structure_configs",
    "structure_by_config_uuid",
]
