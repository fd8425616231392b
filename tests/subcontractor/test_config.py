"""The configuration file, its flags, `subcontractor check` and `subcontractor modules`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from subcontractor.cli import main
from subcontractor.config import ConfigError, load
from tests.serving import free_port

TOKEN = "sct_0123456789abcdef.s3cr3t-s3cr3t-s3cr3t-s3cr3t"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subcontractor.toml"
    path.write_text(text)
    return path


def base(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    return write(
        tmp_path,
        f"""
[contractor]
url = "http://127.0.0.1:{free_port()}/"
token_file = "{tmp_path / "token"}"
site = "dc1"

[agent]
wait = 20
journal_dir = "{tmp_path / "journal"}"

[modules.ipmi]
concurrency = 8
soft_off_wait = 10

[modules.iputils]
{extra}
""",
    )


def test_file_and_flags(tmp_path: Path) -> None:
    config = load(
        base(tmp_path),
        overrides={"contractor.site": "dc2", "agent.wait": 5.0, "contractor.ca_bundle": None},
        module_flags=("simulated=50", "ipmi=2"),
        environ={},
    )
    assert config.contractor.url.endswith("/") is False
    assert config.contractor.token == TOKEN
    assert config.contractor.site == "dc2"
    assert config.agent.wait == 5.0
    assert {name: m.concurrency for name, m in config.modules.items()} == {
        "ipmi": 2,
        "iputils": 4,
        "simulated": 50,
    }
    assert config.module_options["ipmi"] == {"soft_off_wait": 10}
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ('[contractor]\nsite = "x"\n', {}, "contractor.url (flag --url): required"),
        (
            '[contractor]\nurl = "ftp://x"\nsite = "x"\n',
            {},
            "contractor.url (flag --url): Value error, must start with http:// or https://",
        ),
        (
            '[contractor]\nurl = "http://x"\nsite = "x"\n[modules.ipmi]\n',
            {"agent.wait": -1},
            "agent.wait (flag --wait): Input should be greater than or equal to 0",
        ),
        (
            '[contractor]\nurl = "http://x"\nsite = "x"\nsight = 1\n',
            {},
            "contractor.sight: unknown key",
        ),
        (
            '[contractor]\nurl = "http://x"\nsite = "x"\n[modules.ipmi]\nconcurrency = 0\n',
            {},
            "modules.ipmi.concurrency (flag --module): Input should be greater than or equal to 1",
        ),
        ('[contractor]\nurl = "http://x"\nsite = "x"\n', {}, "modules: name at least one module"),
        ('[contractor\nurl = "http://x"\n', {}, "not valid TOML"),
        (
            '[contractor]\nurl = "https://x"\nsite = "x"\n[modules.ipmi]\n',
            {"contractor.ca_bundle": "/nonexistent/ca.pem"},
            "contractor.ca_bundle (flag --ca-bundle): /nonexistent/ca.pem is not a file",
        ),
    ],
)
def test_errors_name_the_key_and_flag(
    tmp_path: Path, text: str, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, text), overrides=overrides, environ={"SUBCONTRACTOR_TOKEN": TOKEN})
    assert message in str(error.value)


def test_token_from_the_environment_only(tmp_path: Path) -> None:
    path = write(tmp_path, '[contractor]\nurl = "http://x"\nsite = "x"\n[modules.ipmi]\n')
    with pytest.raises(ConfigError, match="SUBCONTRACTOR_TOKEN"):
        load(path, environ={})
    assert load(path, environ={"SUBCONTRACTOR_TOKEN": TOKEN}).contractor.token == TOKEN


def test_check_reports_an_unreachable_contractor_without_the_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(base(tmp_path)), "--json"])
    assert result.exit_code == 1
    assert "cannot reach Contractor" in result.output
    assert "s3cr3t" not in result.output


def test_check_names_a_bad_module_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(base(tmp_path, "colour = 'red'"))])
    assert result.exit_code == 1
    assert "modules.iputils.colour: unknown key" in result.output


def test_check_names_an_unknown_module(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["check", "--config", str(base(tmp_path)), "--module", "teleport"]
    )
    assert result.exit_code == 1
    installed = "(installed: aws, docker, ipmi, iputils"
    assert f"modules.teleport: no such module is installed {installed}" in result.output


def test_modules_lists_the_installed_modules() -> None:
    result = CliRunner().invoke(main, ["modules"])
    assert result.exit_code == 0
    names = [line.split("\t")[0] for line in result.output.splitlines()]
    assert {"ipmi", "iputils", "simulated"} <= set(names)
