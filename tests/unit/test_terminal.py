"""What a person at a terminal sees: one readable line per event with its time, JSON when
piped, each event once; log lines with a time; the scan's bar only on a terminal."""

from __future__ import annotations

import io
import logging
import re
import sys
from datetime import datetime
from pathlib import Path

import pytest

from edge.app import default_sinks
from edge.cli.common import setup_logging
from edge.config import MoodboxConfig, load_config
from edge.events import (
    DESCRIBE,
    EnrolmentFinished,
    EnrolmentStarted,
    FaceLost,
    JsonLinesSink,
    LogSink,
    MoodChanged,
    MoodSustained,
    PlayerState,
    StatusChanged,
    TerminalSink,
    TrackStarted,
    UnknownFace,
    UserSignedIn,
    UserSignedOut,
    describe,
)
from edge.music.library import progress_bar

pytestmark = pytest.mark.usefixtures("clean_env")

T = datetime(2026, 11, 27, 7, 34, 25).timestamp()  # local time 07:34:25
PROBABILITIES = {"angry": 0.02, "happy": 0.81, "neutral": 0.17}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


EXAMPLES = [
    (
        MoodChanged(T, 1, "happy", None, PROBABILITIES, (0, 0, 9, 9), "alice"),
        "face 1 (alice): mood happy 81%",
    ),
    (
        MoodChanged(T, 2, "happy", "sad", PROBABILITIES, (0, 0, 9, 9)),
        "face 2: mood happy 81% (was sad)",
    ),
    (MoodSustained(T, 1, "happy", "alice"), "face 1 (alice): mood happy sustained"),
    (FaceLost(T, 1, "happy", "alice"), "face 1 (alice) left (last mood happy)"),
    (StatusChanged(T, "camera", False, "no frame for 5 s"), "camera lost: no frame for 5 s"),
    (StatusChanged(T, "audio", True), "audio ok"),
    (UserSignedIn(T, "alice", 3), "alice signed in (face 3)"),
    (UserSignedOut(T, "alice"), "alice signed out"),
    (UnknownFace(T, 4), "face 4: nobody enrolled"),
    (
        TrackStarted(T, "Morning", "Ann", "happy", "alice", "/m/a.ogg"),
        "playing Morning – Ann (happy, for alice)",
    ),
    (
        PlayerState(T, "paused", "Morning", "Ann", "happy", None, 70),
        "player paused: Morning – Ann, volume 70%",
    ),
    (PlayerState(T, "unavailable", None, None, None, None, 70), "player unavailable"),
    (EnrolmentStarted(T, "bob"), "enrolling bob: look at the camera"),
    (EnrolmentFinished(T, "bob", True, 5), "enrolled bob: 5 sample(s)"),
    (
        EnrolmentFinished(T, "bob", False, 0, "no usable face", ("alice",)),
        "enrolling bob failed: no usable face (also looks like alice)",
    ),
]


@pytest.mark.parametrize(("event", "line"), EXAMPLES)
def test_each_event_reads_as_one_line(event: object, line: str) -> None:
    assert describe(event) == line  # type: ignore[arg-type]


def test_every_event_type_has_a_readable_line() -> None:
    assert {type(event) for event, _ in EXAMPLES} == set(DESCRIBE)


def test_terminal_sink_prefixes_the_time() -> None:
    out = io.StringIO()
    TerminalSink(out).emit(EXAMPLES[0][0])
    assert out.getvalue() == "07:34:25 face 1 (alice): mood happy 81%\n"


def config(tmp_path: Path, text: str = "") -> MoodboxConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path, environ={})


def test_one_sink_each_way(tmp_path: Path) -> None:
    plain = config(tmp_path)
    [on_terminal] = default_sinks(plain, stdout=Tty())
    assert isinstance(on_terminal, TerminalSink)
    [piped] = default_sinks(plain, stdout=io.StringIO())
    assert isinstance(piped, JsonLinesSink)
    [forced] = default_sinks(plain, json_lines=True, stdout=Tty())
    assert isinstance(forced, JsonLinesSink)
    [journal] = default_sinks(config(tmp_path, "run:\n  events_stdout: false\n"), stdout=Tty())
    assert isinstance(journal, LogSink)


def test_an_event_is_shown_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO")
    event = EXAMPLES[0][0]
    for sink in default_sinks(config(tmp_path), stdout=sys.stdout):
        sink.emit(event)
    captured = capsys.readouterr()
    assert captured.out.count('"mood_changed"') == 1
    assert "mood_changed" not in captured.err
    assert "happy" not in captured.err


def test_log_lines_carry_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging("INFO")
    logging.getLogger("edge.test").info("hello")
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO edge\.test: hello\n", stream.getvalue())

    journal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", journal)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")  # the journal stamps lines itself
    setup_logging("INFO")
    logging.getLogger("edge.test").info("hello")
    assert journal.getvalue() == "INFO edge.test: hello\n"
    setup_logging("INFO")


def test_scan_bar_only_on_a_terminal() -> None:
    assert progress_bar(100, stream=io.StringIO()) is None
    out = Tty()
    tick = progress_bar(3, stream=out)
    assert tick is not None
    for done in (1, 2, 3):
        tick(done)
    text = out.getvalue()
    assert "scanning music" in text
    assert "0/3" in text  # tqdm redraws at most 10 times a second and clears the bar at the end
