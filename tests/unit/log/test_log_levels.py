"""Per-logger levels from logback.xml, re-read every minute without a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from twisted.logger import LogLevel, capturedLogs

from opush.log import Levels, LogbackError, is_enabled, levels, logger, parse_logback
from opush.log._levels import DEBUG, INFO, OFF, WARN

GUIDE_SAMPLE = """<included>
        <logger name="AUTHENTICATION" level="INFO" />
        <logger name="REQUEST.FULL" level="INFO" />
</included>
"""


def test_guide_sample_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "logback.xml"
    path.write_text(GUIDE_SAMPLE)
    assert parse_logback(path) == {"AUTHENTICATION": INFO, "REQUEST.FULL": INFO}


def test_full_configuration_form_root_and_case(tmp_path: Path) -> None:
    path = tmp_path / "logback.xml"
    path.write_text(
        '<configuration scan="true"><root level="error"/>'
        '<logger name="IMAP.COMMAND" level="trace"/><logger name="X" level="INHERITED"/>'
        '<logger name="cassandra" level="OFF"/></configuration>'
    )
    assert parse_logback(path) == {"": 40, "IMAP.COMMAND": DEBUG, "cassandra": OFF}


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert parse_logback(tmp_path / "nope.xml") == {}


@pytest.mark.parametrize(
    "text, why",
    [
        ("<included><logger name='A' level='LOUD'/></included>", "unknown level 'LOUD'"),
        ("<included><logger name='A' level='INFO'></included>", "not well-formed"),
        ("<included><logger level='INFO'/></included>", "without a name"),
    ],
)
def test_bad_files_are_explained(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "logback.xml"
    path.write_text(text)
    with pytest.raises(LogbackError, match=why) as info:
        parse_logback(path)
    assert str(path) in str(info.value)


def test_levels_are_hierarchical_and_configuration_wins() -> None:
    lv = Levels()
    assert lv.threshold("CONTAINER") == INFO
    assert lv.threshold("AUTHENTICATION") == WARN
    assert lv.threshold("twisted.web.http") == WARN
    assert lv.threshold("opush.http.activesync") == INFO
    lv.configure({"twisted": DEBUG, "CONTAINER": OFF})
    assert lv.threshold("twisted.web.http") == DEBUG
    assert lv.threshold("twistedx") == WARN
    assert not lv.is_enabled("CONTAINER", LogLevel.critical)


def test_an_ancestor_in_logback_beats_built_in_defaults() -> None:
    lv = Levels()
    lv.add_default("opush.http.activesync", INFO)  # what logger() does for unknown names
    lv.configure({"opush": DEBUG, "": 40})
    assert lv.threshold("opush.http.activesync") == DEBUG
    assert lv.threshold("CONTAINER") == INFO  # shipped with its own level, like logback
    assert lv.threshold("cassandra.cluster") == 40


def test_disabled_events_are_dropped_before_any_observer() -> None:
    log = logger("IMAP.COMMAND")
    with capturedLogs() as events:
        log.debug("a1 SELECT INBOX")
    assert events == []
    assert not is_enabled("IMAP.COMMAND", LogLevel.debug)
    with levels.override({"IMAP.COMMAND": DEBUG}), capturedLogs() as events:
        assert is_enabled("IMAP.COMMAND", LogLevel.debug)
        log.debug("a1 SELECT INBOX")
    assert [e["log_namespace"] for e in events] == ["IMAP.COMMAND"]
    assert not is_enabled("IMAP.COMMAND", LogLevel.debug)


def test_unknown_names_default_like_container() -> None:
    assert is_enabled("SOMETHING.NEW", LogLevel.info) is False
    logger("SOMETHING.NEW")
    assert is_enabled("SOMETHING.NEW", LogLevel.info)


def test_logback_changes_apply_within_a_minute(logs) -> None:
    auth = logger("AUTHENTICATION")
    auth.info("before")
    logs.logback.write_text(GUIDE_SAMPLE)
    logs.advance(59)
    auth.info("still off")
    logs.advance(1)
    auth.info("now on")
    logs.logback.write_text("<included/>")
    logs.advance(60)
    auth.info("off again")
    text = "\n".join(logs.lines())
    assert "before" not in text and "still off" not in text and "off again" not in text
    assert "{AUTHENTICATION} [t/c/r/] now on" in text
    # the change itself is reported once, on CONTAINER
    assert text.count("Logger levels from") == 2
    assert "AUTHENTICATION=INFO, REQUEST.FULL=INFO" in text


def test_broken_logback_keeps_previous_levels(logs) -> None:
    logs.logback.write_text(GUIDE_SAMPLE)
    logs.advance(60)
    logs.logback.write_text("<included><logger name='AUTHENTICATION' level='INFO'>")
    logs.advance(60)
    logger("AUTHENTICATION").info("still on")
    text = "\n".join(logs.lines())
    assert "[WARN ] {CONTAINER} [t/c/r/] " in text and "not well-formed XML" in text
    assert "still on" in text
    logs.advance(60)  # the re-read goes on after an error
    assert text.count("not well-formed") == 1
    assert "\n".join(logs.lines()).count("not well-formed") == 2


def test_stdlib_loggers_follow_logback(logs) -> None:
    std = logging.getLogger("cassandra.pool")
    std.info("hidden")
    logs.logback.write_text('<included><logger name="cassandra" level="INFO"/></included>')
    logs.advance(60)
    std.info("shown")
    text = "\n".join(logs.lines())
    assert "hidden" not in text
    assert "[INFO ] {cassandra.pool} [t/c/r/] shown" in text


def test_stopping_restores_the_levels(tmp_path: Path, logs) -> None:
    logs.logback.write_text(GUIDE_SAMPLE)
    logs.advance(60)
    assert is_enabled("AUTHENTICATION", LogLevel.info)
    logs.service.stopService()
    assert not is_enabled("AUTHENTICATION", LogLevel.info)
    assert logging.getLogger().level == logging.WARNING
    logs.service.startService()  # the fixture stops it again
