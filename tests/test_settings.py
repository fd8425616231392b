"""Settings: the DNS live-update knobs are checked together, and the TSIG secret is never
shown."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contractor.settings import Settings


def test_zones_published_by_updates_need_a_server_and_a_key() -> None:
    with pytest.raises(ValidationError, match="CONTRACTOR_DNS_SERVER_HOST") as caught:
        Settings(dns_zone_modes={"Example.": "updates"})
    assert "CONTRACTOR_DNS_TSIG_SECRET" in str(caught.value)
    settings = Settings(
        dns_zone_modes={"Example.": "both"},
        dns_server_host="127.0.0.1",
        dns_tsig_key_name="k",
        dns_tsig_secret="c2VjcmV0IHRoYXQgbXVzdCBub3Qgc2hvdw==",
    )
    assert settings.dns_mode("example") == "both"
    assert settings.dns_mode("other.") == "files"
    assert settings.dns_updates_wanted
    assert "c2VjcmV0" not in repr(settings) + str(settings.model_dump())
    assert not Settings().dns_updates_wanted
