"""Every command says what it does, every argument what it is and its default."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from edge.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("clean_env")


def subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command below ``parser``, depth first, with its full name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield f"{parser.prog.removeprefix('moodbox').strip()} {name}".strip(), child
                yield from subparsers(child)


COMMANDS = dict(subparsers(build_parser()))


def test_the_walk_finds_every_command() -> None:
    assert {"run", "check-config", "doctor", "enroll", "users", "forget", "music"} <= set(COMMANDS)
    assert {"music scan", "music like", "music prefs", "eval-emotion", "bench"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description_and_every_argument_a_help(name: str) -> None:
    parser = COMMANDS[name]
    assert parser.description, f"moodbox {name}: no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        assert action.help, f"moodbox {name} {action.dest}: no help"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_defaults_are_shown(name: str) -> None:
    parser = COMMANDS[name]
    text = parser.format_help()
    for action in parser._actions:
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert "default" in (action.help or "") or f"(default: {default})" in " ".join(
            text.split()
        ), f"moodbox {name} {action.dest}: default {default!r} not shown"


def test_config_help_names_the_lookup_order() -> None:
    text = " ".join(COMMANDS["users"].format_help().split())
    assert "$MOODBOX_CONFIG, else /etc/moodbox/config.yaml" in text
    assert "$XDG_CONFIG_HOME/moodbox/config.yaml, else the bundled demo config" in text


def test_tta_and_no_tta_both_exist() -> None:
    parser = build_parser()
    assert parser.parse_args(["eval-emotion", "d", "--tta"]).tta is True
    assert parser.parse_args(["eval-emotion", "d", "--no-tta"]).tta is False
    assert parser.parse_args(["eval-emotion", "d"]).tta is None


def test_music_alone_lists_its_subcommands() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["music"])
    assert code == 2
    text = out.getvalue()
    for sub in ("scan", "like", "skip", "replay", "prefs"):
        assert f"    {sub}" in text
    assert "required" not in text


def test_feedback_refuses_an_unknown_mood(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["music", "like", "--mood", "elated"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'elated'" in err
    assert "'happy'" in err
    assert build_parser().parse_args(["music", "like", "--mood", "HAPPY"]).mood == "happy"


def test_feedback_refuses_a_user_not_enrolled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    for command in (["music", "like"], ["music", "prefs"]):
        assert main([*command, "--user", "Nobody Enrolled"]) == 2
        err = capsys.readouterr().err
        assert "--user 'Nobody Enrolled' is not enrolled; enrolled: nobody yet" in err


def test_feedback_takes_an_enrolled_user_in_any_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from edge.identify.store import UserStore

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with UserStore.in_state_dir(tmp_path / "state") as store:
        store.add_embeddings("Ada", np.ones((1, 128), dtype=np.float32))
    assert main(["music", "prefs", "--user", "ADA"]) == 0
    assert main(["music", "prefs", "--user", "Bob"]) == 2
    assert "enrolled: Ada" in capsys.readouterr().err
