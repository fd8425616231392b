"""Smoke tests: a script parses and runs to the end."""

from tscript import Runner, parse


def test_parse_and_run_counting_loop() -> None:
    script = parse("cnt = 0\nwhile ( cnt < 3 ) do cnt = ( cnt + 1 )\n")
    runner = Runner(script)
    assert runner.run().state == "done"
    assert runner.variables == {"cnt": 3}
    assert runner.steps == 30  # the original's node-visit count for this script
