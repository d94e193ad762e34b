"""opush.log lines: the guide's format, the request context, all sources of events."""

from __future__ import annotations

import calendar
import logging
import re

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from opush.log import RequestContext, abbreviate, format_event, logger, request_scope

LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} \[(DEBUG|INFO |WARN |ERROR)\] \{[^}]+\} \[t\d*/c\w*/r\d*/[^\]]*\] "
)

T = calendar.timegm((2026, 11, 22, 5, 26, 36)) + 0.669


def test_guide_sample_line() -> None:
    ctx = RequestContext(
        request_id=942, connection=10079, command="FolderSync", user="userlogin@obm.lng.org"
    )
    event = {
        "log_namespace": "IMAP.COMMAND",
        "log_level": LogLevel.info,
        "log_time": T,
        "log_format": "message {what}",
        "what": "content",
        "opush_context": ctx,
    }
    assert format_event(event) == (
        "05:26:36.669 [INFO ] {IMAP.COMMAND} [t10079/cFolderSync/r942/userlogin@obm.lng.org] "
        "message content\n"
    )


def test_outside_a_request_the_context_is_empty() -> None:
    event = {
        "log_namespace": "CONTAINER",
        "log_level": LogLevel.error,
        "log_time": T,
        "log_format": "Cassandra schema not installed, starting administration services only",
    }
    assert format_event(event) == (
        "05:26:36.669 [ERROR] {CONTAINER} [t/c/r/] "
        "Cassandra schema not installed, starting administration services only\n"
    )


def test_level_column_is_padded_like_logback() -> None:
    labels = []
    for level in LogLevel.iterconstants():
        event = {"log_namespace": "X", "log_level": level, "log_time": T, "log_format": "m"}
        labels.append(format_event(event)[13:20])
    assert labels == ["[DEBUG]", "[INFO ]", "[WARN ]", "[ERROR]", "[ERROR]"]


def test_long_logger_names_are_abbreviated_like_logback() -> None:
    assert (
        abbreviate("com.datastax.driver.core.policies.LoggingRetryPolicy")
        == "c.d.d.c.p.LoggingRetryPolicy"
    )
    assert abbreviate("REQUEST.TRIMMED") == "REQUEST.TRIMMED"
    assert abbreviate("a.very.long.package.name.AndAnExtremelyLongClassNameThatWontFit") == (
        "a.v.l.p.n.AndAnExtremelyLongClassNameThatWontFit"
    )


def test_failures_carry_their_traceback() -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        failure = Failure()
    event = {
        "log_namespace": "CONTAINER",
        "log_level": LogLevel.critical,
        "log_time": T,
        "log_format": "request failed",
        "log_failure": failure,
    }
    text = format_event(event)
    assert text.startswith("05:26:36.669 [ERROR] {CONTAINER} [t/c/r/] request failed\n")
    assert "ZeroDivisionError" in text


def test_file_gets_named_logger_lines_with_context(logs) -> None:
    ctx = RequestContext(request_id=164, connection=106, command="Sync", user="user@domain")
    with request_scope(ctx):
        logger("CONTAINER").info("hello")
        logger("CONTAINER").warn("careful")
    assert len(logs.lines()) == 2
    assert all(LINE.match(line) for line in logs.lines())
    assert logs.lines()[0].endswith(" [INFO ] {CONTAINER} [t106/cSync/r164/user@domain] hello")
    assert logs.lines()[1].endswith(" [WARN ] {CONTAINER} [t106/cSync/r164/user@domain] careful")


def test_guide_defaults(logs) -> None:
    for name in ("MIGRATION", "CONFIGURATION", "CONTAINER", "opush.http.activesync"):
        logger(name).info("on")
    for name in ("AUTHENTICATION", "SUMMARY.OUT", "REQUEST.FULL", "IMAP.COMMAND", "BREAKDOWN"):
        logger(name).info("off")
        logger(name).warn("always")
    logger("CONTAINER").debug("off")
    text = "\n".join(logs.lines())
    assert " off" not in text
    assert text.count(" on") == 4
    assert text.count(" always") == 5


def test_twisted_and_stdlib_events_land_in_opush_log_at_warn(logs) -> None:
    tw = Logger(namespace="twisted.web.http.HTTPChannel")
    tw.info("chatty")
    tw.warn("timed out")
    std = logging.getLogger("cassandra.cluster")
    std.info("chatty")
    std.warning("Host 10.0.0.1 is down")
    lines = logs.lines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("[WARN ] {twisted.web.http.HTTPChannel} [t/c/r/] timed out")
    assert lines[1].endswith("[WARN ] {cassandra.cluster} [t/c/r/] Host 10.0.0.1 is down")


def test_foreground_writes_opush_lines_to_stdout_too(foreground_logs) -> None:
    logger("CONTAINER").info("started")
    assert foreground_logs.stdout.getvalue().endswith("{CONTAINER} [t/c/r/] started\n")
    assert foreground_logs.lines()[-1].endswith("started")


def test_background_does_not_write_stdout(logs) -> None:
    logger("CONTAINER").info("started")
    assert logs.stdout.getvalue() == ""


def test_passwords_never_reach_the_file(logs) -> None:
    ctx = RequestContext(request_id=1, command="Sync", user="alice@example.org")
    with request_scope(ctx):
        logger("CONTAINER").warn("{line}", line="a1 LOGIN alice@example.org s3cr3t!")
        logger("CONTAINER").warn("Authorization: Basic YWxpY2U6czNjcjN0IQ==")
        logger("CONTAINER").warn("GET /login/doLogin?login=alice&password=s3cr3t!&origin=o-push")
    text = (logs.dir / "opush.log").read_text()
    assert "s3cr3t" not in text
    assert "YWxpY2U6czNjcjN0IQ" not in text
    assert text.count("*") == 3


def test_class_attribute_logger_keeps_its_guide_name(logs) -> None:
    class ImapClient:
        log = logger("CONFIGURATION")

    ImapClient().log.info("imap.host=127.0.0.1")
    assert logs.lines()[-1].endswith("{CONFIGURATION} [t/c/r/] imap.host=127.0.0.1")


def test_foreground_stdout_also_gets_stdlib_records(foreground_logs) -> None:
    logging.getLogger("cassandra.cluster").error("no host available")
    assert "{cassandra.cluster} [t/c/r/] no host available" in foreground_logs.stdout.getvalue()


def test_while_running_opush_events_skip_twistds_own_log(logs) -> None:
    from twisted.logger import capturedLogs

    with capturedLogs() as seen_by_twistd:
        logger("CONTAINER").info("once")
    assert seen_by_twistd == []
    assert logs.lines()[-1].endswith(" once")
    logs.service.stopService()
    with capturedLogs() as seen_by_twistd:
        logger("CONTAINER").info("after stop")
    assert len(seen_by_twistd) == 1
    logs.service.startService()  # the fixture stops it again
