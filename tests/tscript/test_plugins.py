"""Plugin modules: values, local functions, and the remote protocol with a fake module."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from tscript import (
    ExecutionError,
    ExternalFunction,
    FunctionFactory,
    Interrupt,
    Module,
    NoRollback,
    NotDefinedError,
    ParameterError,
    Pause,
    Runner,
    ScriptError,
    Value,
)


class Remote(ExternalFunction):
    """A remote call: sends ``compute`` with the value, done when an answer arrives."""

    def __init__(self) -> None:
        self.parameters: dict[str, Any] = {}
        self.result: dict[str, Any] | None = None
        self.sent = 0

    def setup(self, parameters: dict[str, Any]) -> None:
        if "value" not in parameters:
            raise ParameterError("value", "required")
        self.parameters = dict(parameters)

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def message(self) -> str:
        return "got the answer" if self.done else "waiting for the subcontractor"

    @property
    def value(self) -> Any:
        assert self.result is not None
        if "failure" in self.result:
            return ExecutionError(self.result["failure"])
        return self.result["answer"]

    def to_subcontractor(self) -> tuple[str, dict[str, Any]]:
        self.sent += 1
        return ("compute", {"value": self.parameters["value"], "sent": self.sent})

    def from_subcontractor(self, data: dict[str, Any]) -> None:
        if "answer" not in data and "failure" not in data:
            raise ValueError("no answer")
        self.result = data

    def rollback(self) -> None:
        self.result = None

    def to_json(self) -> Any:
        return {"parameters": self.parameters, "result": self.result, "sent": self.sent}

    def from_json(self, state: Any) -> None:
        self.parameters = state["parameters"]
        self.result = state["result"]
        self.sent = state["sent"]


class Stubborn(Remote):
    def rollback(self) -> None:
        raise NoRollback("cannot undo")


class Broken(Remote):
    def rollback(self) -> None:
        raise RuntimeError("oops")


class Attempts(Remote):
    """``run()`` fails with an ExecutionError every other time it is called."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def run(self) -> None:
        self.runs += 1
        if self.runs == 2:
            raise ExecutionError("too many attempts")

    def to_json(self) -> Any:
        return {**super().to_json(), "runs": self.runs}

    def from_json(self, state: Any) -> None:
        super().from_json(state)
        self.runs = state["runs"]


class Handle:
    """An opaque object a plugin hands to scripts (like a database row)."""

    def __init__(self, key: int) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.key == self.key

    def __hash__(self) -> int:
        return self.key

    def __deepcopy__(self, memo: dict[int, Any]) -> Handle:
        return self


class Fake(Module):
    name = "fake"

    def __init__(self) -> None:
        self.stored: Any = 0
        self.reads = 0
        self.polls = 0
        self.setups = 0

    def _read(self) -> Any:
        self.reads += 1
        return self.stored

    def _write(self, value: Any) -> None:
        self.stored = value

    def _fail(self) -> Any:
        raise RuntimeError("database gone")

    def _poll(self, **parameters: Any) -> Any:
        self.polls += 1
        if self.polls < 3:
            raise Interrupt(f"poll {self.polls}")
        return parameters

    def _flaky(self) -> Remote:
        self.setups += 1
        if self.setups == 1:

            class Later(Remote):
                def setup(self, parameters: dict[str, Any]) -> None:
                    raise Pause("not yet")

            return Later()
        return Remote()

    def values(self) -> Mapping[str, Value]:
        return {
            "stored": Value(self._read, self._write),
            "constant": Value(lambda: 42),
            "secret": Value(None, self._write),
            "failing": Value(self._fail, None),
            "handle": Value(lambda: Handle(7)),
        }

    def functions(self) -> Mapping[str, FunctionFactory]:
        return {
            "remote": Remote,
            "elsewhere": lambda: ("other", Remote()),
            "stubborn": Stubborn,
            "broken": Broken,
            "attempts": Attempts,
            "poll": lambda: self._poll,
            "local": lambda: lambda value: value * 2,
            "crash": lambda: lambda: 1 / 0,
            "flaky": self._flaky,
            "reader": lambda: ReadsScript(),
        }

    def to_json(self) -> Any:
        return {"stored": self.stored, "polls": self.polls}

    def from_json(self, state: Any) -> None:
        self.stored = state["stored"]
        self.polls = state["polls"]

    def encode_value(self, value: Any) -> Any:
        return {"handle": value.key} if isinstance(value, Handle) else None

    def decode_value(self, data: Any) -> Any:
        return Handle(data["handle"])


class ReadsScript(ExternalFunction):
    def setup(self, parameters: dict[str, Any]) -> None:
        self.seen = self.get_script_value("fake", "constant")

    @property
    def value(self) -> Any:
        return self.seen


def _reload(runner: Runner, module: Module | None = None) -> Runner:
    text = json.dumps(runner.to_json(), allow_nan=False)
    return Runner.from_json(text, [module or Fake()])


def test_remote_call_round_trip() -> None:
    runner = Runner("aa = fake.remote( value=5 )\nbb = ( aa + 1 )", [Fake()])
    result = runner.run()
    assert (result.state, result.message) == ("waiting", "waiting for the subcontractor")
    assert runner.pending_function == ("fake", "remote")
    task = runner.to_subcontractor(["fake"])
    assert task is not None
    cookie = task["cookie"]
    assert task == {
        "module": "fake",
        "function": "compute",
        "cookie": cookie,
        "parameters": {"value": 5, "sent": 1},
    }
    assert runner.to_subcontractor(["fake"]) is None  # handed out once
    assert runner.run().state == "waiting"
    assert runner.from_subcontractor("stale", {"answer": 1}) == ("Bad Cookie", None)
    assert runner.from_subcontractor(cookie, {"nonsense": 1}) == ("Error", None)
    assert runner.from_subcontractor(cookie, {"answer": 41}) == ("Accepted", "got the answer")
    assert runner.from_subcontractor(cookie, {"answer": 0}) == ("Not Expecting Anything", None)
    assert runner.run().state == "done"
    assert runner.variables == {"aa": 41, "bb": 42}
    assert runner.from_subcontractor(cookie, {"answer": 1}) == ("Script not Running", None)
    assert runner.rollback() == "Script not Running"


def test_task_only_for_the_served_module() -> None:
    runner = Runner("fake.remote( value=1 )", [Fake()])
    runner.run()
    assert runner.to_subcontractor(["ipmi"]) is None
    assert runner.to_subcontractor(["ipmi", "fake"]) is not None


def test_module_name_override() -> None:
    runner = Runner("fake.elsewhere( value=1 )", [Fake()])
    runner.run()
    assert runner.to_subcontractor(["fake"]) is None
    task = runner.to_subcontractor(["other"])
    assert task is not None
    assert task["module"] == "other"


def test_lost_task_is_sent_again() -> None:
    runner = Runner("aa = fake.remote( value=1 )", [Fake()])
    runner.run()
    first = runner.to_subcontractor(["fake"])
    assert first is not None
    assert runner.clear_dispatched()
    second = runner.to_subcontractor(["fake"])
    assert second is not None
    assert second["cookie"] == first["cookie"]
    assert second["parameters"]["sent"] == 2
    assert runner.from_subcontractor(first["cookie"], {"answer": 3})[0] == "Accepted"
    runner.run()
    assert runner.variables == {"aa": 3}


def test_rollback_rotates_the_cookie() -> None:
    runner = Runner("aa = fake.remote( value=1 )", [Fake()])
    runner.run()
    old = runner.to_subcontractor(["fake"])
    assert old is not None
    assert runner.rollback() == "Done"
    assert runner.from_subcontractor(old["cookie"], {"answer": 1}) == ("Bad Cookie", None)
    new = runner.to_subcontractor(["fake"])
    assert new is not None
    assert new["cookie"] != old["cookie"]
    assert runner.from_subcontractor(new["cookie"], {"answer": 2})[0] == "Accepted"
    runner.run()
    assert runner.variables == {"aa": 2}


@pytest.mark.parametrize(
    ("function", "answer"),
    [("stubborn", "Rollback not possible"), ("broken", "Exception while trying to rollback")],
)
def test_rollback_refused(function: str, answer: str) -> None:
    runner = Runner(f"fake.{function}( value=1 )", [Fake()])
    runner.run()
    cookie = runner.cookie
    assert runner.rollback() == answer
    assert runner.cookie == cookie


def test_not_at_a_function() -> None:
    runner = Runner("pause( msg='x' )", [Fake()])
    assert runner.rollback() == "Not At a Function"
    assert runner.from_subcontractor("x", {}) == ("Bad Cookie", None)
    assert not runner.clear_dispatched()
    assert runner.to_subcontractor(["fake"]) is None


def test_cookie_is_fresh_per_call() -> None:
    runner = Runner("fake.remote( value=1 )\nfake.remote( value=2 )", [Fake()])
    runner.run()
    first = runner.to_subcontractor(["fake"])
    assert first is not None
    runner.from_subcontractor(first["cookie"], {"answer": 1})
    runner.run()
    second = runner.to_subcontractor(["fake"])
    assert second is not None
    assert second["cookie"] != first["cookie"]
    assert runner.from_subcontractor(first["cookie"], {"answer": 1}) == ("Bad Cookie", None)


def test_save_restore_while_dispatched() -> None:
    source = "aa = [ 1 ]\nappend( array=aa, value=fake.remote( value=5 ) )\nbb = aa"
    runner = Runner(source, [Fake()])
    runner.run()
    task = runner.to_subcontractor(["fake"])
    assert task is not None
    restored = _reload(runner)
    assert restored.cookie == task["cookie"]
    assert restored.to_subcontractor(["fake"]) is None  # still out, not sent twice
    assert restored.from_subcontractor(task["cookie"], {"answer": 5})[0] == "Accepted"
    restored = _reload(restored)
    assert restored.run().state == "done"
    # the list on the stack before the wait is still the variable's list afterwards
    assert restored.variables == {"aa": [1, 5], "bb": [1, 5]}


def test_rollback_after_restore() -> None:
    runner = Runner("aa = fake.remote( value=1 )", [Fake()])
    runner.run()
    old = runner.to_subcontractor(["fake"])
    assert old is not None
    restored = _reload(runner)
    assert restored.rollback() == "Done"
    restored = _reload(restored)
    assert restored.from_subcontractor(old["cookie"], {"answer": 1}) == ("Bad Cookie", None)
    new = restored.to_subcontractor(["fake"])
    assert new is not None
    assert new["parameters"] == {"value": 1, "sent": 2}


def test_remote_value_exception_is_raised() -> None:
    runner = Runner("aa = fake.remote( value=1 )\nbb = 2", [Fake()])
    runner.run()
    task = runner.to_subcontractor(["fake"])
    assert task is not None
    runner.from_subcontractor(task["cookie"], {"failure": "disk full"})
    with pytest.raises(ExecutionError, match="disk full") as caught:
        runner.run()
    assert caught.value.line == 1
    runner.run()  # a reset continues; the call yields none
    assert runner.variables == {"aa": None, "bb": 2}


def test_handler_run_error_is_resumable() -> None:
    runner = Runner("aa = fake.attempts( value=1 )", [Fake()])
    assert runner.run().state == "waiting"
    with pytest.raises(ExecutionError, match="too many attempts"):
        runner.run()
    runner = _reload(runner)
    assert runner.run().state == "waiting"
    task = runner.to_subcontractor(["fake"])
    assert task is not None
    runner.from_subcontractor(task["cookie"], {"answer": 9})
    assert runner.run().state == "done"
    assert runner.variables == {"aa": 9}


def test_setup_pause_retries_with_a_fresh_handler() -> None:
    fake = Fake()
    runner = Runner("aa = fake.flaky( value=3 )", [fake])
    with pytest.raises(Pause):
        runner.run()
    assert runner.pending_function is None
    assert runner.run().state == "waiting"
    assert fake.setups == 2


def test_setup_parameter_error_aborts() -> None:
    runner = Runner("fake.remote( other=1 )", [Fake()])
    with pytest.raises(ParameterError) as caught:
        runner.run()
    assert caught.value.kind == "ParameterError"
    assert runner.aborted
    assert runner.run().state == "aborted"


def test_module_values() -> None:
    fake = Fake()
    runner = Runner(
        "fake.stored = [ 1 ]\naa = fake.stored\nbb = fake.stored[0]\ncc = fake.constant\n"
        "dd = exists( fake.nothing )\nee = exists( fake.constant )",
        [fake],
    )
    assert runner.run().state == "done"
    assert runner.variables == {"aa": [1], "bb": 1, "cc": 42, "dd": False, "ee": True}
    assert fake.reads == 2  # the getter runs on every read
    assert fake.stored == [1]


def test_module_setter_gets_a_copy() -> None:
    fake = Fake()
    runner = Runner("aa = [ 1 ]\nfake.stored = aa\nappend( array=aa, value=2 )", [fake])
    runner.run()
    assert fake.stored == [1]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("aa = fake.secret", ParameterError),
        ("fake.constant = 1", ParameterError),
        ("aa = fake.failing", ScriptError),
        ("aa = fake.missing", NotDefinedError),
        ("aa = fake.missing( value=1 )", NotDefinedError),
        ("aa = other.value", NotDefinedError),
        ("aa = fake.crash()", ScriptError),
        ("aa = exists( fake.secret )", ParameterError),
        ("aa = exists( fake.failing )", ScriptError),
    ],
)
def test_module_errors(source: str, error: type[Exception]) -> None:
    runner = Runner(source, [Fake()])
    with pytest.raises(error):
        runner.run()
    assert runner.aborted


def test_local_functions_and_polling() -> None:
    fake = Fake()
    runner = Runner("aa = fake.local( value=21 )\nbb = fake.poll( xx=[ 1 ], yy=2 )", [fake])
    first = runner.run()
    assert (first.state, first.message, first.line) == ("waiting", "poll 1", 2)
    runner = _reload(runner, fake)
    assert runner.run().message == "poll 2"
    assert runner.run().state == "done"
    assert runner.variables == {"aa": 42, "bb": {"xx": [1], "yy": 2}}


def test_module_state_is_saved() -> None:
    fake = Fake()
    runner = Runner("fake.stored = 5\npause( msg='x' )", [fake])
    with pytest.raises(Pause):
        runner.run()
    other = Fake()
    Runner.from_json(runner.to_json(), [other])
    assert other.stored == 5


def test_restore_needs_the_modules() -> None:
    runner = Runner("aa = 1", [Fake()])
    with pytest.raises(ValueError, match="fake"):
        Runner.from_json(runner.to_json())


def test_opaque_objects_survive_a_save() -> None:
    runner = Runner("aa = fake.handle\nbb = [ aa ]\npause( msg='x' )\ncc = bb", [Fake()])
    with pytest.raises(Pause):
        runner.run()
    state = runner.to_json()
    assert {"__object__": ["fake", {"handle": 7}]} in state["variables"].values()
    restored = Runner.from_json(json.dumps(state), [Fake()])
    restored.run()
    assert restored.variables["cc"] == [Handle(7)]


def test_unknown_objects_cannot_be_saved() -> None:
    class Bare(Module):
        name = "bare"

        def values(self) -> Mapping[str, Value]:
            return {"thing": Value(lambda: object())}

    runner = Runner("aa = bare.thing\npause( msg='x' )", [Bare()])
    with pytest.raises(Pause):
        runner.run()
    with pytest.raises(TypeError, match="cannot save"):
        runner.to_json()


def test_handlers_read_script_values() -> None:
    runner = Runner("aa = fake.reader()", [Fake()])
    runner.run()
    assert runner.variables == {"aa": 42}


def test_remote_call_at_every_step() -> None:
    """Save and restore before every single step of a job with two remote calls."""
    source = (
        "begin( description='build' )\n"
        "  aa = [ fake.remote( value=1 ) ]\n"
        "  while ( len( array=aa ) < 3 ) do append( array=aa, value=fake.remote( value=2 ) )\n"
        "end\n"
    )
    runner = Runner(source, [Fake()])
    answers = 0
    for _ in range(10_000):
        runner = _reload(runner)
        result = runner.run(1)
        if result.state == "done":
            break
        if result.state == "waiting":
            task = runner.to_subcontractor(["fake"])
            if task is not None:
                answers += 1
                runner = _reload(runner)
                reply = runner.from_subcontractor(task["cookie"], {"answer": answers * 10})
                assert reply[0] == "Accepted"
    assert runner.done
    assert runner.variables == {"aa": [10, 20, 30]}


class AnyRemote(Remote):
    def setup(self, parameters: dict[str, Any]) -> None:
        self.parameters = dict(parameters)

    def to_subcontractor(self) -> tuple[str, dict[str, Any]]:
        return ("run", self.parameters)


class Generic(Module):
    """A module backed by a dict, with remote functions answered by a fake subcontractor."""

    def __init__(self, name: str, values: dict[str, Any], remote: tuple[str, ...] = ()) -> None:
        self.name = name
        self.data = values
        self.remote = remote
        self.local_calls: list[dict[str, Any]] = []

    def _value(self, key: str) -> Value:
        def setter(value: Any) -> None:
            self.data[key] = value

        return Value(lambda: self.data[key], setter)

    def values(self) -> Mapping[str, Value]:
        return {key: self._value(key) for key in self.data}

    def _local(self, **parameters: Any) -> None:
        self.local_calls.append(parameters)

    def functions(self) -> Mapping[str, FunctionFactory]:
        table: dict[str, FunctionFactory] = {name: AnyRemote for name in self.remote}
        table["set_pxe"] = lambda: self._local
        return table


def _job_modules() -> list[Module]:
    return [
        Generic(
            "foundation",
            {"type": "IPMI", "awsec2_instance_id": None},
            ("power_on", "link_test", "power_off", "wait_for_poweroff", "power_state"),
        ),
        Generic(
            "structure",
            {"provisioning_interface": "eth0", "primary_ip": "10.0.0.5", "hostname": "web01"},
        ),
        Generic("config", {"installed": False, "wipe_disks": True}),
        Generic("dhcp", {}),
        Generic("iputils", {}, ("wait_for_port",)),
        Generic("aws", {}, ("create",)),
        Generic("ssh", {}, ("execute",)),
    ]


def _subcontractor(task: dict[str, Any], answers: dict[str, list[Any]]) -> dict[str, Any]:
    """The far end: answers each task from a per-function script of answers."""
    queue = answers.setdefault(task["function"], [])
    return {"answer": queue.pop(0) if queue else True}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


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
  if exists( config.wipe_disks ) then pause( msg="check the disks" )
  message( msg=( 'built ' . structure.hostname ) )
end
"""


def _drive(
    source: str, answers: dict[str, list[Any]], budget: int
) -> tuple[Runner, list[str], list[Module]]:
    """A minimal job engine: restore, run a slice, hand out a task, deliver its result,
    save; the runner only lives between a restore and a save."""
    modules = _job_modules()
    served = [module.name for module in modules]
    clock = Clock()
    state = Runner(source, modules, clock=clock).dumps()
    log: list[str] = []
    for _ in range(100_000):
        runner = Runner.from_json(state, modules, clock=clock)
        try:
            result = runner.run(budget)
        except Pause as pause:
            log.append(f"paused: {pause.message}")
            state = runner.dumps()
            continue
        if result.state == "done":
            return runner, log, modules
        if result.state == "message":
            log.append(f"message: {result.message}")
        task = runner.to_subcontractor(served)
        state = runner.dumps()
        if task is not None:
            log.append(f"task: {task['module']}.{task['function']}")
            runner = Runner.from_json(state, modules, clock=clock)
            queue = answers.setdefault(task["function"] + ":" + task["module"], [])
            reply = runner.from_subcontractor(
                task["cookie"], {"answer": queue.pop(0) if queue else True}
            )
            assert reply[0] == "Accepted"
            state = runner.dumps()
        wake = runner.next_wake()
        if result.state == "waiting" and task is None and wake is not None:
            log.append(f"sleep {wake - clock.now:.0f}")
            clock.now = wake
    raise AssertionError("the job never finished")


@pytest.mark.parametrize("budget", [1, 1000])
def test_a_blueprint_job_end_to_end(budget: int) -> None:
    answers: dict[str, list[Any]] = {
        "run:foundation": [True, False, False, True],
        "run:aws": [{"instance_id": "i-123"}],
    }
    runner, log, modules = _drive(LINUX_CREATE, answers, budget)
    assert runner.variables == {"instance": {"instance_id": "i-123"}}
    tasks = [entry for entry in log if entry.startswith("task")]
    assert tasks == [
        "task: foundation.run",
        "task: foundation.run",
        "task: foundation.run",
        "task: foundation.run",
        "task: iputils.run",
        "task: aws.run",
    ]
    assert [entry for entry in log if entry.startswith("sleep")] == [
        "sleep 30",
        "sleep 10",
        "sleep 10",
    ]
    assert "paused: check the disks" in log
    assert log[-1] == "message: built web01"
    foundation, _, config, dhcp = modules[:4]
    assert isinstance(foundation, Generic)
    assert isinstance(config, Generic)
    assert isinstance(dhcp, Generic)
    assert foundation.data["awsec2_instance_id"] == "i-123"
    assert config.data["installed"] is True
    assert dhcp.local_calls == [{"interface": "eth0", "pxe": "ubuntu"}]
