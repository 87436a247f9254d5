"""Music: a mood-placed library, a recommender that draws (never argmax), a player, the policy.

library.py      scan folders, read tags, place tracks in valence–arousal, cache
moods.py        the valence–arousal tables (Russell's circumplex)
recommend.py    pure: a target from emotion probabilities, a weighted draw
preferences.py  per-user, per-mood preferences in SQLite
player.py       Player protocol, PygamePlayer adapter, FakePlayer
mpd.py          MpdPlayer: an MPD (or Mopidy) server behind the same protocol
players.py      the music.player.type registry
controller.py   MusicController: the decide-to-play service of the app
"""
