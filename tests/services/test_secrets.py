"""Which values of a task are secrets, and how an answer is masked of them."""

from __future__ import annotations

from contractor.plugins import foundation_types
from contractor.plugins.ipmi import IpmiFoundation
from contractor.services.secrets import MASK, Secrets, is_secret_name

PARAMETERS = {
    "connection": {"host": "10.0.0.9", "username": "admin", "password": "old-password"},
    "state": "on",
    "cloud": {"credentials": {"id": "AKIDEXAMPLE", "region": "eu"}, "api_token": "tok-1234"},
    "items": [{"secret": "in-a-list"}],
}


def test_the_secrets_of_a_task() -> None:
    foundation_types()
    foundation = IpmiFoundation(type="ipmi", password="current-password", username="admin")
    secrets = Secrets.of_task(PARAMETERS, foundation)
    assert secrets.values == {
        "old-password",  # handed out before the foundation's password changed
        "current-password",
        "AKIDEXAMPLE",  # everything under a secret-named key
        "eu",
        "tok-1234",
        "in-a-list",
    }
    assert "old-password" not in repr(secrets)
    assert Secrets.of_task({"connection": {"host": "h"}}, None).values == frozenset()


def test_declared_secret_fields_name_secrets_too() -> None:
    assert is_secret_name("bmc_password")
    assert is_secret_name("API_Key")
    assert not is_secret_name("state")
    assert is_secret_name("community", declared=("community",))
    assert not is_secret_name(5)


def test_masking_reaches_every_string_and_key() -> None:
    secrets = Secrets.of(["hunter2-pw", "hunter2-pw-longer"])
    answer = {
        "message": "login root/hunter2-pw failed",
        "deep": [{"x": ("a", "hunter2-pw-longer!")}],
        "hunter2-pw": 1,
        "count": 3,
        "flag": True,
        "none": None,
    }
    assert secrets.mask(answer) == {
        "message": f"login root/{MASK} failed",
        "deep": [{"x": ["a", f"{MASK}!"]}],  # the longer secret masked whole
        MASK: 1,
        "count": 3,
        "flag": True,
        "none": None,
    }
    assert Secrets.of([]).mask(answer) is answer


def test_short_secrets_are_masked_where_they_stand_alone() -> None:
    secrets = Secrets.of(["ab1", ""])
    assert secrets.mask_text("root/ab1 refused") == f"root/{MASK} refused"
    assert secrets.mask_text("ab1") == MASK
    assert secrets.mask_text('"ab1",ab1') == f'"{MASK}",{MASK}'
    assert secrets.mask_text("tab1e xab1 ab12") == "tab1e xab1 ab12"  # inside words: kept
    assert secrets.mask_text("user_ab1") == f"user_{MASK}"  # no letter or digit next to it
    assert Secrets.of([""]).mask_text("anything") == "anything"
