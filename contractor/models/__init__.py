"""Every core table of Contractor. Plugin tables (foundation types, the core's ``manual`` and
``simulated`` included) are mapped when ``contractor.plugins.foundation_types()`` loads them."""

from contractor.models.auth import LOGIN_OUTCOMES, ROLES, ApiToken, LoginAttempt, User
from contractor.models.base import Base, utcnow
from contractor.models.blueprint import (
    PXE,
    BluePrint,
    BluePrintParent,
    BluePrintScript,
    FoundationBluePrint,
    Script,
    StructureBluePrint,
    StructureFoundationBluePrint,
)
from contractor.models.boot import BootEntry, BootSite, DhcpLease, DhcpPool
from contractor.models.building import (
    COMPLEX_TYPES,
    AbstractNetworkInterface,
    Complex,
    ComplexMember,
    Dependency,
    Foundation,
    FoundationPlacement,
    RealNetworkInterface,
    Structure,
    complex_state,
    foundation_state,
)
from contractor.models.config import ConfigGeneration
from contractor.models.directory import Zone
from contractor.models.discovery import DiscoveredHardware
from contractor.models.dns_push import DnsPush, DnsPushCursor, DnsPushZone
from contractor.models.events import Event, EventHorizon, WebhookDelivery, WebhookTarget
from contractor.models.foreman import (
    FINISHED_JOB_STATES,
    STEPPABLE_JOB_STATES,
    Job,
    JobLog,
    JobState,
    SubcontractorToken,
    Task,
    TaskState,
)
from contractor.models.network import (
    Address,
    AddressBlock,
    BaseAddress,
    DynamicAddress,
    Network,
    NetworkAddressBlock,
    ReservedAddress,
)
from contractor.models.site import Site

__all__ = [
    "COMPLEX_TYPES",
    "FINISHED_JOB_STATES",
    "LOGIN_OUTCOMES",
    "PXE",
    "ROLES",
    "STEPPABLE_JOB_STATES",
    "AbstractNetworkInterface",
    "Address",
    "AddressBlock",
    "ApiToken",
    "Base",
    "BaseAddress",
    "BluePrint",
    "BluePrintParent",
    "BluePrintScript",
    "BootEntry",
    "BootSite",
    "Complex",
    "ComplexMember",
    "ConfigGeneration",
    "Dependency",
    "DhcpLease",
    "DhcpPool",
    "DiscoveredHardware",
    "DnsPush",
    "DnsPushCursor",
    "DnsPushZone",
    "DynamicAddress",
    "Event",
    "EventHorizon",
    "Foundation",
    "FoundationBluePrint",
    "FoundationPlacement",
    "Job",
    "JobLog",
    "JobState",
    "LoginAttempt",
    "Network",
    "NetworkAddressBlock",
    "RealNetworkInterface",
    "ReservedAddress",
    "Script",
    "Site",
    "Structure",
    "StructureBluePrint",
    "StructureFoundationBluePrint",
    "SubcontractorToken",
    "Task",
    "TaskState",
    "User",
    "WebhookDelivery",
    "WebhookTarget",
    "Zone",
    "complex_state",
    "foundation_state",
    "utcnow",
]
