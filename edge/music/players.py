"""The registry that maps ``music.player.type`` to a Player adapter.

Apart from the adapters so that each is imported only when its type is
chosen: pygame opens a sound card here, python-mpd2 talks to a server
elsewhere, and a box uses one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.config import MoodboxConfig
    from edge.music.player import Player


def _pygame(config: MoodboxConfig) -> Player:
    from edge.music.player import PygamePlayer

    music = config.music
    return PygamePlayer(retry_s=music.audio_retry_s, retry_max_s=music.audio_retry_max_s)


def _mpd(config: MoodboxConfig) -> Player:
    from edge.music.mpd import MpdPlayer, read_password

    music, player = config.music, config.music.player
    root = player.mpd_music_root if player.mpd_music_root is not None else music.folders[0]
    return MpdPlayer(
        host=player.mpd_host,
        port=player.mpd_port,
        password=read_password(),
        music_root=config.resolve(root),
        uri_prefix=player.mpd_uri_prefix,
        timeout_s=player.mpd_timeout_s,
        retry_s=music.audio_retry_s,
        retry_max_s=music.audio_retry_max_s,
    )


# One explicit registry that fails loudly on unknown keys: adding a backend is adding a line.
PLAYERS: dict[str, Callable[[MoodboxConfig], Player]] = {
    "pygame": _pygame,
    "mpd": _mpd,
}


def make_player(config: MoodboxConfig) -> Player:
    """Build (not yet connect) the player that ``music.player.type`` names."""
    kind = config.music.player.type
    try:
        factory = PLAYERS[kind]
    except KeyError as err:
        raise ConfigError(
            f"music.player.type: unknown player {kind!r} (choose from {', '.join(PLAYERS)})"
        ) from err
    return factory(config)
