"""``tscript.references``: the module values and functions a script uses, from its tree."""

from __future__ import annotations

import pytest

import tscript
from tscript import ParseError, References, parse, references

SCRIPT = """\
# structure.hostname and dhcp.set_pxe() in a comment are not references
note = "structure.hostname, config.wipe and foundation.interfaces in a string neither"
foundation.power_on()
if exists( config.wipe ) then
  first = foundation.interfaces[ 0 ]
elif ( config.level == 2 ) then foundation.bmc_ip = '192.0.2.1'
else foundation.bits[ ( 1 + signaling.complete ) ] = 2
while not iputils.ping( target=structure.hostname ) do pass
size = len( array=[ 1, { a=dhcp.pool } ] )
:again
if not ( note == '' ) then begin()
  delay( seconds=1 )
end
"""


def test_values_read_indexed_tested_and_assigned() -> None:
    assert references(SCRIPT).values == {
        ("config", "wipe"),  # exists
        ("config", "level"),
        ("foundation", "interfaces"),  # indexed
        ("foundation", "bmc_ip"),  # assigned
        ("foundation", "bits"),  # an item assigned
        ("signaling", "complete"),  # inside an index
        ("structure", "hostname"),  # a parameter
        ("dhcp", "pool"),  # inside a map inside an array
    }


def test_functions_called_with_builtins_under_none() -> None:
    assert references(SCRIPT).functions == {
        ("foundation", "power_on"),
        ("iputils", "ping"),
        (None, "len"),
        (None, "delay"),
    }


def test_modules_and_uses() -> None:
    found = references(SCRIPT)
    assert found.modules == {"foundation", "config", "signaling", "structure", "iputils", "dhcp"}
    assert found.uses("structure")
    assert found.uses("structure", "hostname")
    assert found.uses("foundation", "power_on")  # a function
    assert not found.uses("structure", "config_uuid")
    assert not found.uses("dhcp", "set_pxe")  # named only in the comment
    assert not found.uses("ssh")


def test_words_in_strings_and_comments_are_not_references() -> None:
    found = references('# foundation.power_on()\nmessage( msg="structure.hostname" )\n')
    assert found == References(frozenset(), frozenset({(None, "message")}), frozenset())


def test_a_parsed_script_and_its_source_give_the_same_references() -> None:
    assert references(parse(SCRIPT)) == references(SCRIPT)


def test_source_text_is_parsed_once() -> None:
    source = SCRIPT + "structure.set_config( name='x', value=1 )\n"
    assert references(source) is references("".join([source]))  # equal text, remembered


def test_source_that_does_not_parse_raises() -> None:
    with pytest.raises(ParseError):
        references("if then\n")


def test_exported() -> None:
    assert {"references", "References"} <= set(tscript.__all__)
