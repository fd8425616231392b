"""Log lines: JSON or text, one per event, with the request, job and task ids, secrets
masked; levels per component; and a real `contractor --log-format json serve` whose every
line is JSON and whose access line carries the request id the client was told."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from contractor import logs, requestid
from contractor.cli import main
from contractor.settings import Settings
from tests.serving import clean_env, contractor_serve

TOKEN = "ctr_0123456789abcdef.s3cr3t-s3cr3t-s3cr3t-s3cr3t"
SUB_TOKEN = "sct_0123456789abcdef.an0ther-secret-value-here"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    logger = logging.getLogger("contractor.test_logs")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_secret_shapes_are_masked() -> None:
    redact = logs.Redactor(["tsig-secret-value"])
    line = redact(
        f"token {TOKEN} sub {SUB_TOKEN} header Bearer abcdefghijklmnop "
        "url postgresql://contractor:hunter22@db.example/contractor "
        "GET /config/9b2d6f1e-0c4a-4a53-9d3c-1e2f3a4b5c6d and /api/v1/signal/9b2d6f1e-0c4a "
        'password=letmein {"bmc_password": "calvin"} key tsig-secret-value'
    )
    for secret in (
        "s3cr3t",
        "an0ther",
        "abcdefghijklmnop",
        "hunter22",
        "9b2d6f1e",
        "letmein",
        "calvin",
        "tsig-secret-value",
    ):
        assert secret not in line, secret
    # what names the token or the place stays
    assert "ctr_0123456789abcdef.********" in line
    assert "postgresql://contractor:********@db.example" in line
    assert "/config/********" in line


def test_settings_secrets_are_known_to_the_redactor() -> None:
    settings = Settings(
        database_url="postgresql://c:db-password-1@db/c",
        metrics_token="metrics-token-value",
        dns_tsig_secret="dHNpZy1zZWNyZXQ=",
    )
    redact = logs.redactor_for(settings)
    assert redact("db-password-1 metrics-token-value dHNpZy1zZWNyZXQ=") == " ".join([logs.MASK] * 3)


def test_json_lines_carry_the_ids_and_mask_tracebacks(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logs.JsonFormatter(logs.Redactor()))
    token = requestid._current.set("req-42")
    try:
        with logs.job_and_task(job_id=7, task_id=31):
            try:
                raise RuntimeError(f"the BMC refused {TOKEN}")
            except RuntimeError:
                logger.exception("stepping job %s failed", 7)
        logger.warning("outside the job")
    finally:
        requestid._current.reset(token)
    logger.info("outside the request")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # one line per event, the traceback inside it
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "stepping job 7 failed"
    assert (first["request_id"], first["job_id"], first["task_id"]) == ("req-42", 7, 31)
    assert first["level"] == "error"
    assert first["logger"] == "contractor.test_logs"
    assert "RuntimeError: the BMC refused ctr_0123456789abcdef.********" in first["exception"]
    assert "s3cr3t" not in stream.getvalue()
    assert second["request_id"] == "req-42"
    assert "job_id" not in second
    assert "request_id" not in third
    assert first["time"].endswith("Z")


def test_text_lines_name_the_ids(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logs.TextFormatter(logs.Redactor()))
    with logs.job_and_task(task_id=5):
        logger.warning("answer refused: %s", SUB_TOKEN)
    line = stream.getvalue().strip()
    assert line.endswith(
        "warning contractor.test_logs: [task_id=5] answer refused: sct_0123456789abcdef.********"
    )


def test_levels_per_component() -> None:
    settings = Settings(
        log_level="warning",
        log_levels={"contractor.foreman": "debug", "uvicorn.access": "error"},
        log_format="json",
    )
    root = logging.getLogger()
    before = root.level, list(root.handlers)
    try:
        logs.configure(settings)
        assert root.level == logging.WARNING
        assert logging.getLogger("contractor.foreman").level == logging.DEBUG
        assert logging.getLogger("uvicorn.access").level == logging.ERROR
        logs.configure(settings)  # again: still one handler of ours
        ours = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
        assert len(ours) == 1
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]
        for name in ("contractor.foreman", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_bad_log_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"log_levels\.contractor"):
        Settings(log_levels={"contractor": "loud"})
    result = CliRunner().invoke(main, ["--log-format", "xml", "schema"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json'" in result.output


def test_serve_writes_json_lines_with_the_request_id(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = clean_env(CONTRACTOR_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with contractor_serve(
        env, tmp_path, 60, log, options=["--log-format", "json"], stops_cleanly=True
    ) as base:
        answer = httpx.get(
            f"{base}/config/9b2d6f1e-0c4a-4a53-9d3c-1e2f3a4b5c6d",
            headers={"X-Request-ID": "client-chosen-1"},
        )
        assert answer.headers["x-request-id"] == "client-chosen-1"
    text = log.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("request_id") == "client-chosen-1"]
    assert [r["logger"] for r in access] == ["access"], text
    assert "/config/******** 404" in access[0]["message"]
    assert "9b2d6f1e" not in text
    # uvicorn's own lines are JSON too (only the announcement is plain)
    assert any(r["logger"].startswith("uvicorn") for r in records)
    plain = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert [line.split(" on ")[0] for line in plain] == ["contractor serving"], plain


@pytest.mark.parametrize("word", ["passwd", "api_key", "private_key", "snmp_community", "Token"])
def test_every_secret_word_is_masked_in_name_value_shapes(word: str) -> None:
    """The log redactor goes by the one list of secret words (contractor.secret_names)."""
    line = logs.Redactor()(f'bmc_{word}=calvin42 and {{"{word}": "hunter22"}}')
    assert "calvin42" not in line
    assert "hunter22" not in line
    assert f"bmc_{word}=" in line
