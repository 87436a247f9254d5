"""music.player.type: the registry, its config section, the MPD password and path mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import ConfigError
from edge.music.mpd import MpdPlayer, read_password
from edge.music.player import PygamePlayer
from edge.music.players import PLAYERS, make_player

pytestmark = pytest.mark.usefixtures("clean_env")


def config_file(tmp_path: Path, player: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"music:\n  folders: [songs]\n  player:\n{player}")
    return path


def test_default_is_pygame_and_existing_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("music:\n  audio_retry_s: 3\n  audio_retry_max_s: 30\n")
    config = load_config(path, environ={})
    assert config.music.player.type == "pygame"
    player = make_player(config)
    assert isinstance(player, PygamePlayer)
    assert player._retry_s == 3


def test_mpd_type_builds_an_unconnected_mpd_player(tmp_path: Path) -> None:
    path = config_file(tmp_path, "    type: mpd\n    mpd_host: music.local\n    mpd_port: 6601\n")
    config = load_config(path, environ={})
    player = make_player(config)
    assert isinstance(player, MpdPlayer)
    assert not player.available  # nothing connects before the first poll
    assert (player._host, player._port) == ("music.local", 6601)
    # Unset music root: the first music folder, resolved against the config file.
    assert player.uri(tmp_path / "songs" / "happy" / "a.ogg") == "happy/a.ogg"
    assert player.uri(tmp_path / "elsewhere.ogg") is None


def test_mpd_music_root_maps_paths(tmp_path: Path) -> None:
    path = config_file(tmp_path, "    type: mpd\n    mpd_music_root: /srv/music\n")
    player = make_player(load_config(path, environ={}))
    assert isinstance(player, MpdPlayer)
    assert player.uri(Path("/srv/music/calm/b c.flac")) == "calm/b c.flac"
    assert player.uri(tmp_path / "songs" / "a.ogg") is None


def test_unknown_player_type_fails_with_its_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, "    type: sonos\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "music.player.type (line 4)" in info.value.problems[0]


def test_registry_fails_loudly_on_a_type_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(config_file(tmp_path, "    type: mpd\n"), environ={})
    monkeypatch.delitem(PLAYERS, "mpd")
    with pytest.raises(ConfigError, match=r"unknown player 'mpd' \(choose from pygame\)"):
        make_player(config)


def test_mpd_keys_without_mpd_type_are_errors(tmp_path: Path) -> None:
    path = config_file(tmp_path, "    mpd_host: music.local\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        "music.player (line 3): Value error, mpd_host only apply with type: mpd"
    ]


def test_unknown_player_key_is_an_error(tmp_path: Path) -> None:
    path = config_file(tmp_path, "    type: mpd\n    mpd_password: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "music.player.mpd_password (line 5)" in info.value.problems[0]


def test_player_section_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("")
    config = load_config(
        path,
        environ={
            "MOODBOX_MUSIC_PLAYER": "{type: mpd, mpd_host: kitchen.local}",
            "MOODBOX_MPD_PASSWORD": "secret",  # a secret, not a setting: no error
        },
    )
    assert config.music.player.type == "mpd"
    assert config.music.player.mpd_host == "kitchen.local"


def test_mpd_password_from_env_or_credential(tmp_path: Path) -> None:
    assert read_password({}) is None
    assert read_password({"MOODBOX_MPD_PASSWORD": "a"}) == "a"
    (tmp_path / "mpd_password").write_text("from-file\n")
    credentials = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert read_password(credentials) == "from-file"
    assert read_password({**credentials, "MOODBOX_MPD_PASSWORD": "env"}) == "env"
    assert read_password({"CREDENTIALS_DIRECTORY": str(tmp_path / "none")}) is None


def test_mpd_client_library_is_imported_only_on_connect() -> None:
    code = (
        "import sys; from pathlib import Path; from edge.music.mpd import MpdPlayer; "
        "p = MpdPlayer(host='127.0.0.1', port=1, music_root=Path('.')); "
        "p.play(Path('a.ogg')); p.set_volume(0.5); p.stop(); "
        "print('mpd' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_mopidy_takes_uris_with_a_prefix(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        "    type: mpd\n    mpd_music_root: /srv/music\n    mpd_uri_prefix: 'local:track:'\n",
    )
    player = make_player(load_config(path, environ={}))
    assert isinstance(player, MpdPlayer)
    assert player.uri(Path("/srv/music/happy/sun ny.ogg")) == "local:track:happy/sun%20ny.ogg"
    files = MpdPlayer(host="h", music_root=Path("/srv/music"), uri_prefix="file:///mnt/m/")
    assert files.uri(Path("/srv/music/a b.ogg")) == "file:///mnt/m/a%20b.ogg"
