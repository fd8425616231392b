"""Secrets stay out of log lines, tracebacks and messages."""

from __future__ import annotations

import io
import logging

from subcontractor.masking import Masker, MaskingFormatter, redacted


def test_known_and_learned_secrets_are_masked() -> None:
    masker = Masker(["sct_0123456789abcdef.topsecretvalue"])
    masker.learn({"connection": {"host": "bmc1", "password": "hunter22"}, "state": "on"})
    text = masker.mask("token sct_0123456789abcdef.topsecretvalue, password hunter22 on bmc1")
    assert text == "token sct_0123456789abcdef.***, password *** on bmc1"
    # any token-shaped string, known or not
    assert masker.mask("sct_aaaaaaaaaaaaaaaa.other") == "sct_aaaaaaaaaaaaaaaa.***"
    assert redacted({"connection": {"password": "x", "host": "h"}}) == {
        "connection": {"password": "***", "host": "h"}
    }


def test_formatter_masks_tracebacks() -> None:
    masker = Masker()
    masker.add("hunter22")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter(masker, "%(message)s"))
    logger = logging.getLogger("test-masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("login hunter22 failed")
        except ValueError:
            logger.exception("with %s", "hunter22")
    finally:
        logger.removeHandler(handler)
    assert "hunter22" not in stream.getvalue()
    assert "login *** failed" in stream.getvalue()
