"""The suite's grouping for parallel workers (tests/conftest.py) names modules that exist."""

from tests.conftest import _ROOT, _VM_MODULES


def test_every_vm_module_exists() -> None:
    missing = sorted(module for module in _VM_MODULES if not (_ROOT / module).is_file())
    assert missing == []
