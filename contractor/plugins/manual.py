"""The ``manual`` foundation type: machines an operator racks, powers and wipes by hand.

Its TScript functions pause the job and ask the operator to do the step; resuming the job
says it is done. ``power_state()`` is ``"unknown"`` (nothing reads a hand-built machine).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Mapped

from contractor.foreman.remote import AskOperator
from contractor.models.base import key_of
from contractor.models.building import Foundation
from contractor.plugins import FoundationType
from tscript import FunctionFactory


class ManualFoundation(Foundation):
    __tablename__ = "manual_foundation"

    id: Mapped[int] = key_of("foundation")

    __mapper_args__ = {"polymorphic_identity": "manual"}


_ASK = {
    "power_on": "Power on {locator}, then resume the job",
    "power_off": "Power off {locator}, then resume the job",
    "wait_for_poweroff": "Resume the job once {locator} is powered off",
    "destroy": "Dismantle {locator} (it is no longer wanted), then resume the job",
}


def _power_state_unknown() -> str:
    return "unknown"


class ManualFoundationType(FoundationType):
    name = "manual"
    model = ManualFoundation
    class_list = ("Metal", "VM", "Container", "Switch", "Manual")
    description = "anything built by hand; Contractor only records it"

    def tscript_functions(self, foundation: Foundation) -> Mapping[str, FunctionFactory]:
        def ask(text: str) -> FunctionFactory:
            return lambda: AskOperator(text.format(locator=foundation.locator))

        functions: dict[str, FunctionFactory] = {name: ask(text) for name, text in _ASK.items()}
        # as the original's: nothing can read a hand-built machine's power
        functions["power_state"] = lambda: _power_state_unknown
        functions["set_boot_device"] = lambda: AskOperator(
            f"Set the boot device of {foundation.locator} to {{device}}, then resume the job",
            accepts=("device",),
        )
        return functions
