"""Log redaction (bot/logs.py): linear time on any input, no secret through a cut, no forged lines."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bot import logs
from bot.logs import MESSAGE_LIMIT, REDACTED, install_redaction, redact, register_secrets

KIB = 1024


@pytest.fixture
def registered() -> Iterator[Callable[[list[str]], None]]:
    """register_secrets() for one test: the process-wide registry is put back afterwards."""
    saved = logs._secrets
    yield register_secrets
    logs._secrets = saved


# --- (a) linear time ----------------------------------------------------------------------------
def repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


FAMILIES = {
    "a.a.a": lambda size: repeat("a.", size),
    "a://a:a:a": lambda size: ("a://" + repeat("a:", size))[:size],
    "a://a:a://a:": lambda size: repeat("a://a:", size),
    "?token= repeated": lambda size: repeat("?token=", size),
    "&token=& repeated": lambda size: repeat("&token=&", size),
    "x run": lambda size: repeat("x", size),
    "many @": lambda size: repeat("@", size),
    "a://a:a@ repeated": lambda size: repeat("a://a:a@", size),
    "xoxb- repeated": lambda size: repeat("xoxb-", size),
    "hooks.slack.com/ repeated": lambda size: repeat("hooks.slack.com/", size),
    "\\n repeated": lambda size: repeat("a\n", size),
}


def best_time(work: Callable[[], object], runs: int = 5) -> float:
    """The fastest of several runs: what the work costs, without the noise of a busy machine."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def growth(apply: Callable[[str], object], make: Callable[[int], str], small: int, large: int) -> float:
    """How much longer `apply` takes on `large` characters than on `small`, per repetition."""
    small_text, large_text = make(small), make(large)
    rounds = large // small  # the small input `rounds` times: the same amount of text as the large one
    small_cost = best_time(lambda: [apply(small_text) for _ in range(rounds)]) / rounds
    return best_time(lambda: apply(large_text)) / small_cost


@pytest.mark.parametrize("family", list(FAMILIES))
def test_redaction_time_grows_linearly(family: str) -> None:
    # Uncut (limit=None), so the patterns themselves are measured: 8x the text, about 8x the time.
    ratio = growth(lambda text: redact(text, limit=None, one_line=True), FAMILIES[family], 8 * KIB, 64 * KIB)
    assert ratio < 16, f"{family}: 64 KiB took {ratio:.1f}x as long as 8 KiB (quadratic would be 64x)"


def test_the_growth_measure_tells_a_quadratic_pattern() -> None:
    """The control: the URL pattern this module used to have is caught by the same measure."""
    old = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
    assert growth(lambda text: old.sub("", text), FAMILIES["a.a.a"], 2 * KIB, 16 * KIB) > 16


def test_a_huge_pathological_text_is_cut_first_and_costs_little() -> None:
    text = repeat("a.", 4 * KIB * KIB)
    # Generous for a loaded CI machine: redacting 4 MiB of this whole took minutes before the cut.
    assert best_time(lambda: redact(text), runs=3) < 0.5
    out = redact(text)
    assert out.endswith(f"… [cut {len(text) - MESSAGE_LIMIT} characters]")
    assert out.startswith(text[:MESSAGE_LIMIT])


# --- (b) no registered secret survives, wherever it is ---------------------------------------------
PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))
SECRETS = st.text(PRINTABLE, min_size=6, max_size=40).filter(lambda s: s not in REDACTED)
SURROUNDINGS = st.text(max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRETS, before=SURROUNDINGS, after=SURROUNDINGS, others=st.lists(SECRETS, max_size=2))
@example(secret="ted>ab", before="", after="abab", others=[])  # a marker next to text completes it again
@example(secret="d><red", before="", after="d><red", others=[])  # two markers side by side
@example(secret="x@y:z/secret", before="postgres://u:", after="@h/d", others=[])
def test_a_registered_secret_never_survives(
    registered: Callable[[list[str]], None], secret: str, before: str, after: str, others: list[str]
) -> None:
    registered([secret, *others])
    text = before + secret + after
    assert secret not in redact(text)
    assert secret not in redact(text, one_line=True)
    assert secret not in redact(text * 3, limit=len(text) * 2)  # cut, whatever the position


FILLER = st.text(alphabet="abc -_\n\t", min_size=1, max_size=50)  # nothing a pattern would change


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRETS, data=st.data())
def test_a_secret_across_the_cut_leaves_no_part(
    registered: Callable[[list[str]], None], secret: str, data: st.DataObject
) -> None:
    inside = data.draw(st.integers(1, len(secret) - 1), label="characters of the secret before the cut")
    before = repeat(data.draw(FILLER, label="filler"), MESSAGE_LIMIT - inside)
    assume((before + secret).find(secret) == len(before))
    registered([secret])
    after = data.draw(st.text(max_size=100), label="after") + "." * 50  # still too long once replaced
    out = redact(before + secret + after)
    assert out.startswith(before) and "… [cut " in out
    shown = out[len(before) : len(before) + inside]  # where the secret's first characters were
    assert shown != secret[:inside] or shown == REDACTED[:inside]
    assert secret not in out


SHAPED = "ZQZQZQZQZQZQ"  # letters found nowhere else in these texts, nor in the cut marker


@pytest.mark.parametrize(
    "text",
    [
        f"redis://user:{SHAPED}@redis.example:6380/0",
        f"https://x.example/?token={SHAPED}&a=1",
        f"token xoxb-{SHAPED}",
        f"POST https://hooks.slack.com/commands/T0001/1234/{SHAPED}",
    ],
)
def test_a_shaped_secret_across_the_cut_leaves_no_part(text: str) -> None:
    """Credentials found by their shape (not registered) are recognised on either side of the cut."""
    start = text.index(SHAPED)
    for inside in range(len(SHAPED) + 1):
        padded = "x " * ((MESSAGE_LIMIT - start - inside) // 2) + " " * ((MESSAGE_LIMIT - start - inside) % 2)
        assert len(padded) + start + inside == MESSAGE_LIMIT
        out = redact(padded + text + " and more")
        assert "[cut " in out and "Z" not in out and "Q" not in out, (inside, out[len(padded) :])


# --- (c) shapes: a form body's leading token, response_url, line breaks ------------------------------
def test_a_form_body_leading_token_is_redacted() -> None:
    body = "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example&command=%2Fdesk-languages"
    out = redact(body)
    assert "gIkuvaNzQIHg97ATvDxqgjtO" not in out
    assert out.startswith(f"token={REDACTED}&team_id=T0001&team_domain=example")
    assert redact(f"body: {body}") == f"body: {out}"
    assert redact("api_key=value1234&monkey=business") == "api_key=value1234&monkey=business"  # longer names


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("replying to https://hooks.slack.com/commands/T0001/1234567/abcdefSECRET now", "https://hooks.slack.com/"),
        ("https://hooks.slack-gov.com/actions/T0001/1234567/abcdefSECRET", "https://hooks.slack-gov.com/"),
        ("response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0001%2F1234567%2FabcdefSECRET&trigger_id=1",
         "response_url=https%3A%2F%2Fhooks.slack.com/"),
        ('{"response_url":"https:\\/\\/hooks.slack.com\\/actions\\/T0001\\/1234567\\/abcdefSECRET"}',
         '{"response_url":"https:\\/\\/hooks.slack.com/'),
        ("payload=%7B%22response_url%22%3A%22https%3A%5C%2F%5C%2Fhooks.slack.com%5C%2Factions%5C%2FabcdefSECRET",
         "https%3A%5C%2F%5C%2Fhooks.slack.com/"),
    ],
)
def test_a_response_url_keeps_only_scheme_and_host(text: str, kept: str) -> None:
    out = redact(text)
    assert "SECRET" not in out and "1234567" not in out and "T0001" not in out
    assert kept + REDACTED in out


def test_a_password_with_an_unencoded_at_sign_goes_whole() -> None:
    out = redact("could not connect to postgresql://bot:p@ss:w0rd/secret@db.example:5432/desk")
    assert out == f"could not connect to postgresql://bot:{REDACTED}@db.example:5432/desk"


@pytest.fixture
def log_output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A real logger, through the redacting record factory, writing formatted lines to a buffer."""
    install_redaction()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)
    logger.propagate = True


def test_line_breaks_in_a_message_cannot_forge_a_log_line(log_output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = log_output
    typed = "hi\nERROR bot.app: forged\r\nWARNING x: y\u2028z\x85w\x0bv"
    logger.info("unknown option %r from %s", typed, typed)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("INFO tests.redaction: unknown option")
    assert lines[0].count("hi\\nERROR bot.app: forged\\r\\nWARNING x: y\\u2028z\\x85w\\x0bv") == 2  # %r and %s


def test_a_traceback_stays_readable_on_its_lines(log_output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = log_output
    try:
        raise ValueError("bad value token=abcdef123456")
    except ValueError:
        logger.exception("failed\nfor a user")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "ERROR tests.redaction: failed\\nfor a user"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == f"ValueError: bad value token={REDACTED}"


def test_a_long_message_is_cut_with_a_visible_marker(
    log_output: tuple[logging.Logger, io.StringIO], registered: Callable[[list[str]], None]
) -> None:
    logger, buffer = log_output
    registered(["s3cr3t-value"])
    logger.info("%s", "y" * (MESSAGE_LIMIT - 5) + "s3cr3t-value" + "z" * 100000)
    line = buffer.getvalue().rstrip("\n")
    assert "s3cr3t" not in line and "s3cr" not in line
    # The secret was replaced before the cut: 5 + len("<redacted>") - 5 + 100000 characters cut.
    assert line.endswith(f"yyyyy<reda… [cut {len(REDACTED) - 5 + 100000} characters]")
    assert len(line) < MESSAGE_LIMIT + 100


# --- (d) JSON lines (LOG_FORMAT=json) -------------------------------------------------------------
def test_json_lines_are_redacted_in_every_field_and_carry_the_request(
    log_output: tuple[logging.Logger, io.StringIO], registered: Callable[[list[str]], None]
) -> None:
    logger, buffer = log_output
    handler = logger.handlers[0]
    handler.setFormatter(logs.RedactingJsonFormatter())
    secret = "json0secret0value0beef"
    registered([secret])
    with logs.bind_request(slack_request_id="ab12cd34", user="U0ABC", channel="C0DEF", command="/x", app="prod"):
        try:
            raise ValueError(f"Desk said {secret} and usersig=abcdef123456")
        except ValueError:
            logger.exception("failed for %s", secret, extra={"detail": {"url": f"https://x/?sig={secret}"}})
    with logs.bind_request(slack_request_id="ab12cd34", user="hello world\n"):  # not an id: dropped
        logger.info("second")
    first, second = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert secret not in buffer.getvalue() and "abcdef123456" not in buffer.getvalue()
    assert first["message"] == f"failed for {REDACTED}" and first["level"] == "ERROR"
    assert first["logger"] == "tests.redaction" and first["time"]
    assert first["exc_info"].startswith("Traceback") and REDACTED in first["exc_info"]
    assert first["detail"] == {"url": f"https://x/?sig={REDACTED}"}
    assert {k: first[k] for k in logs.REQUEST_FIELDS} == {
        "slack_request_id": "ab12cd34", "user": "U0ABC", "channel": "C0DEF", "command": "/x", "app": "prod",
    }
    assert second["slack_request_id"] == "ab12cd34" and "user" not in second


def test_the_text_format_shows_the_request_id(log_output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = log_output
    logger.handlers[0].setFormatter(logs.TextFormatter())
    with logs.bind_request(slack_request_id="ab12cd34"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = buffer.getvalue().splitlines()
    assert inside.endswith("INFO tests.redaction: [req=ab12cd34] inside")
    assert outside.endswith("INFO tests.redaction: outside")


# --- (e) the Desk client's settings paths at DEBUG, text and JSON -----------------------------------
@pytest.mark.e2e
@pytest.mark.usefixtures("debug_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_in_logs_of_the_settings_read_and_write(log_format: str, caplog: pytest.LogCaptureFixture) -> None:
    """desc_robot_config and update_robot_config, answered, refused and lost, logged at DEBUG
    (urllib3's request lines included): neither the SecretKey nor any UserSig sent shows."""
    from urllib.parse import parse_qs

    from bot.boot import build_desk_client
    from bot.desk import DeskError
    from bot.logs import configure_logging
    from bot.sandbox.desk_emulator import SANDBOX_KEY, DeskEmulator, Fault
    from tests.support.environment import make_settings

    with DeskEmulator() as emu:
        settings = make_settings(emu, DESK_TIMEOUT="0.5")
        configure_logging("DEBUG", settings.secrets(), log_format=log_format)
        buffer = io.StringIO()
        handler = logging.StreamHandler(buffer)
        handler.setFormatter(logs.RedactingJsonFormatter() if log_format == "json" else logs.TextFormatter())
        logging.getLogger().addHandler(handler)
        caplog.set_level(logging.DEBUG)
        try:
            client = build_desk_client(settings)
            current = client.robot_settings("fil")
            client.update_robot_settings("fil", current)
            shown: list[str] = []
            for fault in (Fault(late=2.0, api="update_robot_config"), Fault(drop=True, api="update_robot_config"),
                          Fault(code=70009, api="update_robot_config"), Fault(code=60006, api="desc_robot_config")):
                emu.inject(fault)
                try:
                    client.update_robot_settings("fil", current) if fault.api == "update_robot_config" else (
                        client.robot_settings("fil"))
                except DeskError as error:
                    shown += [str(error), repr(error), error.hint]
        finally:
            logging.getLogger().removeHandler(handler)
        sigs = {parse_qs(call.raw_query)["usersig"][0] for call in emu.calls}
    written = buffer.getvalue() + caplog.text
    assert "update_robot_config" in written and "in doubt" in written  # the paths were logged …
    assert "openim_console_http_svc/update_robot_config" in written  # … urllib3's DEBUG line too
    if log_format == "json":
        assert all(json.loads(line)["message"] for line in buffer.getvalue().splitlines())
    assert sigs
    for secret in [SANDBOX_KEY, *sigs]:
        assert secret not in written and secret not in "\n".join(shown)


def test_work_that_fails_on_a_context_executor_is_logged_with_the_request(caplog: pytest.LogCaptureFixture) -> None:
    """A plain thread pool keeps a task's exception in a Future nobody reads: the settings modal's
    threads (ModalThreads) would fail silently."""
    from bot.logs import ContextExecutor, bind_request, request_fields

    seen: list[dict[str, str]] = []

    def fails() -> None:
        seen.append(request_fields())
        raise LookupError("no such view")

    with ContextExecutor(max_workers=1) as pool, caplog.at_level(logging.ERROR, logger="bot.logs"):
        with bind_request(slack_request_id="abc12345"):
            future = pool.submit(fails)
        assert isinstance(future.exception(timeout=5), LookupError)
        assert pool.submit(lambda: 7).result(timeout=5) == 7
    (record,) = [r for r in caplog.records if "background work failed" in r.getMessage()]
    assert "LookupError" in record.getMessage() and record.exc_info is not None
    assert seen == [{"slack_request_id": "abc12345"}]
