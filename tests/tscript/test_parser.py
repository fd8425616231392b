"""The parser: the AST it builds, the layout rules, and its error messages."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tscript import ParseError, Runner, ScriptError, parse
from tscript.nodes import (
    Array,
    Assignment,
    Block,
    Break,
    Call,
    Constant,
    Continue,
    Exists,
    Goto,
    If,
    Infix,
    Item,
    JumpPoint,
    MapLiteral,
    Not,
    Pass,
    Variable,
    While,
)


def _only(source: str) -> object:
    body = parse(source).root.body
    assert len(body) == 1
    return body[0]


def test_assignment_positions() -> None:
    node = _only("  aa = ( bb + 1 )")
    assert isinstance(node, Assignment)
    assert (node.line, node.column) == (1, 3)
    assert isinstance(node.value, Infix)
    assert (node.value.line, node.value.column) == (1, 8)
    assert (node.value.left.line, node.value.left.column) == (1, 10)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("-7", -7),
        ("+3", 3),
        ("007", 7),
        ("1.50", 1.5),
        ("-0.0", -0.0),
        ("'x y'", "x y"),
        ('"it\'s"', "it's"),
        ("'a\\nb'", "a\\nb"),
        ("true", True),
        ("False", False),
        ("NONE", None),
        ("1:30", timedelta(seconds=90)),
        ("2:00:00", timedelta(hours=2)),
        ("1:02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("99:99", timedelta(seconds=6039)),
    ],
)
def test_constants(text: str, value: object) -> None:
    node = _only(f"aa = {text}")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Constant)
    assert node.value.value == value
    assert type(node.value.value) is type(value)


def test_huge_float_is_inf() -> None:
    node = _only("aa = " + "9" * 400 + ".5")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Constant)
    assert node.value.value == float("inf")


def test_every_expression_kind() -> None:
    node = _only(
        "aa = [ bb, cc[ 1 ], mod.val, mod.val[ 'k' ], f( xx=1, yy=2 ), mod.g(), not dd, "
        "exists( ee ), exists( ff[ 0 ] ), { kk=1, end=2 }, ( 1 . 2 ), ( gg and hh ) ]"
    )
    assert isinstance(node, Assignment)
    array = node.value
    assert isinstance(array, Array)
    items = array.items
    assert isinstance(items[0], Variable)
    assert (items[0].module, items[0].name) == (None, "bb")
    assert isinstance(items[1], Item)
    assert isinstance(items[2], Variable)
    assert (items[2].module, items[2].name) == ("mod", "val")
    assert isinstance(items[3], Item)
    assert items[3].module == "mod"
    assert isinstance(items[4], Call)
    assert [name for name, _ in items[4].parameters] == ["xx", "yy"]
    assert isinstance(items[5], Call)
    assert (items[5].module, items[5].parameters) == ("mod", ())
    assert isinstance(items[6], Not)
    assert isinstance(items[7], Exists)
    assert isinstance(items[8], Exists)
    assert isinstance(items[8].target, Item)
    assert isinstance(items[9], MapLiteral)
    assert [key for key, _ in items[9].entries] == ["kk", "end"]
    assert isinstance(items[10], Infix)
    assert items[10].operator == "."
    assert isinstance(items[11], Infix)
    assert items[11].operator == "and"


@pytest.mark.parametrize(
    "operator", [".", "^", "*", "/", "%", "+", "-", "&", "|", "and", "or", "==", "!="]
)
def test_operators(operator: str) -> None:
    node = _only(f"aa = ( bb {operator} cc )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Infix)
    assert node.value.operator == operator


@pytest.mark.parametrize("operator", ["<=", ">=", "<", ">"])
def test_comparisons(operator: str) -> None:
    node = _only(f"aa = ( bb {operator} cc )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Infix)
    assert node.value.operator == operator


def test_signs_and_subtraction() -> None:
    node = _only("aa = ( bb -2 )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Infix)
    assert node.value.operator == "-"
    node = _only("aa = ( 1 - -2 )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Infix)
    assert isinstance(node.value.right, Constant)
    assert node.value.right.value == -2
    body = parse("aa = 1\n-5\n").root.body
    assert isinstance(body[1], Constant)
    assert body[1].value == -5


def test_concatenation_versus_module_value() -> None:
    node = _only("aa = ( bb . cc )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Infix)
    node = _only("aa = ( bb .cc )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Infix)
    with pytest.raises(ParseError):
        parse("aa = ( bb.cc )")
    with pytest.raises(ParseError, match="no spaces"):
        parse("aa = ( bb. cc )")


def test_control_flow_shapes() -> None:
    source = (
        "if aa then\n  bb = 1\nelif cc then bb = 2\n\nelse\n\n  bb = 3\n"
        "while ( aa < 3 ) do\n  begin( description='loop' )\n    continue\n    break\n  end\n"
        ":label\ngoto label\npass\n"
    )
    body = parse(source).root.body
    assert [type(node) for node in body] == [If, While, JumpPoint, Goto, Pass]
    branches = body[0].branches  # type: ignore[union-attr]
    assert [condition is None for condition, _ in branches] == [False, False, True]
    loop = body[1]
    assert isinstance(loop, While)
    assert isinstance(loop.body, Block)
    assert loop.body.description == "loop"
    assert [type(node) for node in loop.body.body] == [Continue, Break]


def test_dangling_else_binds_inner() -> None:
    node = _only("if aa then if bb then cc = 1 else cc = 2")
    assert isinstance(node, If)
    assert len(node.branches) == 1
    inner = node.branches[0][1]
    assert isinstance(inner, If)
    assert len(inner.branches) == 2


def test_single_block_is_the_root() -> None:
    root = parse("# header\nbegin( description='all', expected_time=5:00 )\n  aa = 1\nend\n").root
    assert root.description == "all"
    assert root.expected_time == timedelta(minutes=5)
    assert root.line == 2
    root = parse("begin()\nend\naa = 1").root
    assert root.description is None
    assert len(root.body) == 2


def test_jump_points_in_a_single_root_block_are_refused() -> None:
    # DESIGN TScript 7: a jump point that is a line of a block is a parse error, also when
    # that block is the whole script (its options then apply to the whole script).
    error = _error("# header\nbegin( description='all' )\n  aa = 1\n  :top\nend")
    assert (error.line, error.column) == (4, 3)
    assert 'jump point "top"' in error.message
    assert "put the jump point and its goto outside it" in error.message
    error = _error("begin()\n  begin()\n    :deep\n  end\nend")
    assert (error.line, error.column) == (3, 5)
    # outside the block they are top-level lines, and the block is an ordinary line
    root = parse("begin()\n  aa = 1\nend\n:top\ngoto top").root
    assert root.description is None
    assert isinstance(root.body[1], JumpPoint)


def test_the_first_structure_error_in_source_order_is_raised() -> None:
    error = _error("aa = 1\nbreak\nbegin()\n  :inner\nend\ncontinue")
    assert (error.line, error.column) == (2, 1)


def test_block_on_one_line_and_statement_after_begin() -> None:
    body = parse("begin()end\nbegin() aa = 1\n  bb = 2\nend").root.body
    assert isinstance(body[0], Block)
    assert body[0].body == ()
    assert isinstance(body[1], Block)
    assert len(body[1].body) == 2


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("aa = 1\nbb = 2\ncc = 3", [1, 2, 3]),
        ("aa = 1\r\nbb = 2\r\ncc = 3", [1, 2, 3]),
        ("aa = 1\rbb = 2\rcc = 3", [1, 2, 3]),
        ("aa = 1\n\n\r\n\rbb = 2", [1, 5]),
        ("aa = 'x\ny'\nbb = 2", [1, 3]),
        ("aa = [ 1,\n 2 ]\nbb = 2", [1, 3]),
    ],
)
def test_line_numbers(source: str, lines: list[int]) -> None:
    assert [node.line for node in parse(source).root.body] == lines


def test_comments() -> None:
    body = parse("# top\naa = 1#x\nbb = '#not'   # yes\nbegin() # c\nend # d\n").root.body
    assert len(body) == 3


def test_keywords_as_parameter_names() -> None:
    node = _only("aa = slice( array=bb, start=1, end=2 )")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Call)
    assert [name for name, _ in node.value.parameters] == ["array", "start", "end"]


def test_module_value_names_may_be_keywords() -> None:
    node = _only("aa = mod.do")
    assert isinstance(node, Assignment)
    assert isinstance(node.value, Variable)
    assert node.value.name == "do"


def _error(source: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse(source)
    return caught.value


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    [
        ("aa = 1 + 2", 1, 8, "infix expressions need parentheses: ( a + b )"),
        ("aa = ( 1 + 2 + 3 )", 1, 14, "one operator per pair of parentheses"),
        ("while len( array=aa ) < 1 do pass", 1, 23, "infix expressions need parentheses"),
        ("aa = bb = 5", 1, 9, "an assignment is a statement"),
        ("aa = ( 1 + bb = 2 )", 1, 15, "an assignment is a statement"),
        ("if aa = 5 then bb = 1", 1, 7, "an assignment is a statement"),
        ("aa = len( bb )", 1, 14, "parameters and map entries are named"),
        ("aa = ( 5 )", 1, 10, "not a single value"),
        ("foo( 1 )", 1, 6, 'expected a parameter name or ")" (parameters and map entries are'),
        ("f( aa=1, )", 1, 10, "expected a parameter name"),
        ("aa = { kk: 1 }", 1, 10, 'expected "=" (parameters and map entries are named'),
        ("aa = ()", 1, 7, "unexpected"),
        ("aa[0][1] = 2", 1, 6, "only a variable can be indexed"),
        ("aa = [ 1, 2 ][0]", 1, 14, "only a variable can be indexed"),
        ("begin()\naa = 1\n", 1, 1, "missing its end"),
        ("aa = 'open", 1, 6, "string not closed"),
        ("aa = 123:45", 1, 6, "bad time"),
        ("aa = 1:2:3:4:5", 1, 6, "bad time"),
        ("aa = -1:30", 1, 6, "a time cannot have a sign"),
        ("aa = 1 $", 1, 8, "unexpected character"),
        ("aa = a.b.c\nbb = 1", 1, 9, "unexpected"),
        ("a.b.c = 1", 1, 4, "unexpected"),
        ("do = 1", 1, 1, "unexpected"),
        ("true = 5", 1, 6, "unexpected"),
        ("if = 6", 1, 4, "unexpected"),
        ("aa = end.xx", 1, 6, "keyword"),
        ("aa = { kk=1, kk=2 }", 1, 14, "given twice"),
        ("f( xx=1, xx=2 )", 1, 10, "given twice"),
        ("begin( colour='red' )\nend", 1, 8, "not a block option"),
        ("begin( description=aa )\nend", 1, 20, "must be a constant"),
        ("aa = 1\nbegin()\n  :inner\nend", 3, 3, "jump points are only allowed"),
        ("if aa then :inner", 1, 12, "jump points are only allowed"),
        ("while aa do begin()\n:x\nend", 2, 1, "jump points are only allowed"),
        ("break", 1, 1, "only allowed inside a while loop"),
        ("if aa then continue", 1, 12, "only allowed inside a while loop"),
        ("aa = [ 1, ]", 1, 11, "unexpected"),
        ("if c then\n x = 1\nelse\n y y", 4, 4, "unexpected"),
        ("if true then\n  aa = 1\n  bb = 2\nelse\n  aa = 3", 4, 1, "begin( ) ... end"),
        ("aa = .5", 1, 6, "unexpected"),
        ("aa = 5.", 1, 7, "unexpected"),
        ("goto  ", 1, 7, "expected a name"),
        ("aa = -bb", 1, 6, "unexpected"),
    ],
)
def test_errors(source: str, line: int, column: int, words: str) -> None:
    error = _error(source)
    assert (error.line, error.column) == (line, column), error.message
    assert words in error.message


def test_caret_rendering() -> None:
    error = _error("aa = 1\n\tbb = ( 1 + 2 + 3 )\n")
    assert error.source_line == "\tbb = ( 1 + 2 + 3 )"
    rendered = error.render("script.ts").splitlines()
    assert rendered[0].startswith("script.ts:2:15: ")
    assert rendered[1] == " bb = ( 1 + 2 + 3 )"
    assert rendered[2] == "              ^"
    assert str(error).startswith("2:15: ")


def test_whitespace_never_matters() -> None:
    tight = parse("aa=len(array=[1,2])\nif(aa==2)then bb=exists(aa)")
    loose = parse("aa  =  len (  array = [ 1 , 2 ] )\nif ( aa == 2 ) then  bb = exists ( aa )")
    assert len(tight.root.body) == len(loose.root.body) == 2


def test_deep_nesting_is_not_recursive() -> None:
    depth = 200
    source = "aa = " + "( 1 + " * depth + "1" + " )" * depth
    node = _only(source)
    assert isinstance(node, Assignment)
    assert isinstance(_only("aa = " + "not " * 5000 + "1"), Assignment)
    with pytest.raises(ParseError, match="nested more than 200 deep"):
        parse("aa = " + "[ " * 201 + "1" + " ]" * 201)
    blocks = "begin()\n" * 199 + "aa = 1\n" + "end\n" * 199
    assert len(parse(blocks).root.body) == 1
    with pytest.raises(ParseError, match="nested more than 200 deep"):
        parse("if aa then " * 201 + "bb = 1")


def test_deeply_nested_scripts_run() -> None:
    source = "cnt = 0\n" + "begin()\n" * 199 + "cnt = ( cnt + 1 )\n" + "end\n" * 199
    source += "aa = " + "[ " * 100 + "cnt" + " ]" * 100
    runner = Runner(source)
    while runner.run().state != "done":
        pass
    assert runner.variables["cnt"] == 1
    # values built deeper than a copy can go are a script error, not a crash
    runner = Runner("aa = []\nwhile true do aa = [ aa ]")
    with pytest.raises(ScriptError, match="RecursionError"):
        runner.run(100_000)
    depth = 0
    value = runner.variables["aa"]
    while value:
        value = value[0]
        depth += 1
    assert depth > 150
    restored = Runner.from_json(json.dumps(runner.to_json()))
    assert restored.variables == runner.variables


# scripts modelled on the real blueprint scripts of the reference (§14)
LINUX_CREATE = """\
# create a linux structure
begin( description="Create Linux", expected_time=30:00 )
  begin( description="Power On", expected_time=2:00 )
    foundation.power_on()
    delay( seconds=30 )
  end
  if ( foundation.type == 'IPMI' ) then
    while not foundation.link_test() do begin()
      delay( seconds=10 )
    end
  elif ( foundation.type == "Manual" ) then
    pause( msg="Power on the machine, then resume" )
  else
    fatal_error( msg=( "unknown foundation type " . foundation.type ) )
  dhcp.set_pxe( interface=structure.provisioning_interface, pxe="ubuntu" )
  begin( description="Install OS", expected_time=20:00, max_time=1:00:00 )
    iputils.wait_for_port( target=structure.primary_ip, port=22 )
  end
  config.installed = true
  instance = aws.create()
  foundation.awsec2_instance_id = instance[ 'instance_id' ]
  message( msg=( 'built ' . structure.hostname ) )
end
"""

LINUX_DESTROY = """\
begin( description="Destroy Linux" )
  foundation.power_off()
  foundation.wait_for_poweroff()
  if exists( config.wipe_disks ) then
    if config.wipe_disks then ssh.execute( host=structure.primary_ip, command="wipe" )
  retries = 0
  while ( retries < 3 ) do begin()
    retries = ( retries + 1 )
    if ( foundation.power_state() == 'off' ) then break
  end
end
"""

VM_CREATE = """\
:start
host_list = vcenter.host_list( min_memory=2048, min_cpu=2 )
while ( len( array=host_list ) < 1 ) do begin( description="wait for hosts" )
  pause( msg="no host with enough resources; add one, then resume" )
  host_list = vcenter.host_list( min_memory=2048, min_cpu=2, cpu_scaler=1, memory_scaler=1 )
end
host = pop( array=host_list, index=0 )
datastore_list = vcenter.datastore_list( host=host, min_free_space=20 )
spec = { cpu_count=2, memory_size=2048 }
vm_uuid = vcenter.create( host=host, datastore=datastore_list[ 0 ], vm_spec=spec )
foundation.vcenter_uuid = vm_uuid
interface_map = foundation.get_interface_map()
foundation.set_interface_macs( interface_map=interface_map )
if not foundation.power_on() then goto start
"""


@pytest.mark.parametrize("source", [LINUX_CREATE, LINUX_DESTROY, VM_CREATE])
def test_blueprint_like_scripts(source: str) -> None:
    script = parse(source)
    assert script.source == source


def test_long_generated_script() -> None:
    lines = [":begin_here"]
    for index in range(300):
        lines.append(f"begin( description='step {index}', expected_time=0:{index % 60:02} )")
        lines.append(f"  value{index} = ( ( value{index} + {index} ) * 2 )")
        lines.append(f"  if ( value{index} > 10 ) then mod.act( count={index}, tag='x' )")
        lines.append(f"  while ( counter < {index} ) do counter = ( counter + 1 )")
        lines.append("end")
    lines.append("goto begin_here")
    root = parse("\n".join(lines)).root
    assert len(root.body) == 302
