"""The music library: scan folders, read tags, place every track in valence–arousal, cache.

Placement, first match wins: a ``moods.yaml`` override file at a folder's root
(``relative/path.ogg: happy`` or ``{valence: 0.5, arousal: -0.2}``), a mood
folder name (``music/happy/…``), the file's MOOD tag, its genre and BPM tags,
else neutral. Tags are cached by path, size and modification time, so a rescan
reads only new or changed files; a corrupt or unreadable file is logged and
skipped, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from edge.config import parse_yaml
from edge.music.moods import (
    EMOTION_POINTS,
    Point,
    arousal_from_bpm,
    genre_point,
    mood_point,
    nearest_mood,
)
from edge.statedir import write_private_text

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset({".mp3", ".ogg", ".oga", ".wav", ".flac"})
OVERRIDE_FILE = "moods.yaml"
CACHE_VERSION = 1
# Scans that read at least this many files draw a progress bar on stderr (a terminal).
PROGRESS_MIN_FILES = 50


class UnreadableTrackError(Exception):
    """A file with an audio suffix whose tags or stream info cannot be read."""


@dataclass(frozen=True, slots=True)
class Tags:
    """What the file itself says (every field optional but the duration)."""

    duration: float
    title: str | None = None
    artist: str | None = None
    genre: str | None = None
    mood: str | None = None
    bpm: float | None = None


@dataclass(frozen=True, slots=True)
class Track:
    """A playable track, placed in valence–arousal space."""

    id: str
    path: Path
    title: str
    artist: str
    duration: float
    genre: str
    point: Point
    mood: str
    placed_by: str  # override | folder | tags | genre | default


def read_tags(path: Path) -> Tags:
    """Tags and duration through mutagen; UnreadableTrackError if the file is not audio."""
    import mutagen

    try:
        audio = mutagen.File(path, easy=True)
    except Exception as err:  # mutagen raises many types for broken files
        raise UnreadableTrackError(f"{path}: {err}") from err
    if audio is None or getattr(audio, "info", None) is None:
        raise UnreadableTrackError(f"{path}: not a recognised audio file")
    duration = float(getattr(audio.info, "length", 0.0) or 0.0)
    if duration <= 0:
        raise UnreadableTrackError(f"{path}: no audio (zero length)")
    tags = audio.tags or {}

    def first(key: str) -> str | None:
        try:
            values = tags.get(key)
        except Exception:  # some tag containers reject unknown keys
            return None
        if not values:
            return None
        value = values[0] if isinstance(values, list) else values
        text = str(value).strip()
        return text or None

    bpm_text = first("bpm")
    try:
        bpm = float(bpm_text) if bpm_text else None
    except ValueError:
        bpm = None
    return Tags(
        duration=duration,
        title=first("title"),
        artist=first("artist"),
        genre=first("genre"),
        mood=first("mood"),
        bpm=bpm,
    )


def place(relative: Path, tags: Tags, override: object | None) -> tuple[Point, str, str]:
    """(point, mood word, placed_by) for a track; see the module docstring for the order."""
    if override is not None:
        point = _override_point(override)
        if point is not None:
            word = override if isinstance(override, str) else nearest_mood(point)
            return point, word.strip().lower(), "override"
        logger.warning(
            "%s: unusable override %r in %s (ignored)", relative, override, OVERRIDE_FILE
        )
    for folder in reversed(relative.parent.parts):
        point = mood_point(folder)
        if point is not None:
            return point, folder.lower(), "folder"
    if tags.mood and (point := mood_point(tags.mood)) is not None:
        return point, tags.mood.strip().lower(), "tags"
    genre = genre_point(tags.genre) if tags.genre else None
    if genre is not None or tags.bpm:
        valence = genre.valence if genre is not None else 0.0
        arousal = genre.arousal if genre is not None else 0.0
        if tags.bpm:
            bpm_arousal = arousal_from_bpm(tags.bpm)
            arousal = bpm_arousal if genre is None else (arousal + bpm_arousal) / 2
        point = Point(valence, arousal).clipped()
        return point, nearest_mood(point), "genre" if genre is not None else "tags"
    return EMOTION_POINTS["neutral"], "neutral", "default"


def _override_point(value: object) -> Point | None:
    if isinstance(value, str):
        return mood_point(value)
    if isinstance(value, Mapping):
        try:
            return Point(float(value["valence"]), float(value["arousal"])).clipped()
        except (KeyError, TypeError, ValueError):
            return None
    return None


def load_overrides(root: Path) -> dict[str, object]:
    """The folder's ``moods.yaml`` (relative path → mood word or point); {} if absent or bad."""
    path = root / OVERRIDE_FILE
    if not path.is_file():
        return {}
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        logger.warning("%s: cannot read overrides (%s); ignoring the file", path, err)
        return {}
    if not isinstance(data, dict):
        logger.warning("%s: expected a mapping of relative path to mood; ignoring", path)
        return {}
    return {str(key).replace("\\", "/"): value for key, value in data.items()}


class Library:
    """The placed tracks, by id and by path."""

    def __init__(self, tracks: Iterable[Track]) -> None:
        self.tracks: tuple[Track, ...] = tuple(sorted(tracks, key=lambda t: t.id))
        self.by_id: dict[str, Track] = {t.id: t for t in self.tracks}
        self.by_path: dict[Path, Track] = {t.path: t for t in self.tracks}

    def __len__(self) -> int:
        return len(self.tracks)

    def find(self, key: str) -> Track | None:
        """A track by id or by (absolute or relative) path."""
        if key in self.by_id:
            return self.by_id[key]
        return self.by_path.get(Path(key).expanduser().resolve())


def progress_bar(
    total: int, *, stream: TextIO | None = None, force: bool = False
) -> Callable[[int], None] | None:
    """A tqdm bar on stderr for a scan of ``total`` files; None when stderr is not a
    terminal (a journal or a log file would get every redraw as a line of its own),
    unless ``force``."""
    stream = stream or sys.stderr
    if not force and not _is_terminal(stream):
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="scanning music", unit="file", file=stream, leave=False)

    def tick(done: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return tick


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def scan_library(
    folders: Sequence[Path],
    *,
    cache_path: Path | None = None,
    progress: Callable[[int], Callable[[int], None] | None] | None = None,
) -> Library:
    """Scan ``folders`` (reusing the cache for unchanged files) and place every track.

    ``progress(total)`` may return a callable that is told how many of the files
    to read are done; by default a bar is drawn on stderr for large scans.
    """
    cache = _load_cache(cache_path)
    entries: dict[str, dict[str, Any]] = {}
    found: list[tuple[Path, Path, os.stat_result]] = []
    for folder in folders:
        root = folder.expanduser().resolve()
        if not root.is_dir():
            logger.warning("music folder %s does not exist; skipping it", root)
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                try:
                    found.append((root, path, path.stat()))
                except OSError as err:
                    logger.warning("%s: cannot stat (%s); skipping", path, err)
    to_read = [
        (root, path, stat) for root, path, stat in found if not _fresh(cache.get(str(path)), stat)
    ]
    if progress is None:
        progress = _default_progress
    tick = progress(len(to_read)) if to_read else None
    for done, (_, path, stat) in enumerate(to_read, 1):
        entry: dict[str, Any] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
        try:
            entry["tags"] = asdict(read_tags(path))
        except UnreadableTrackError as err:
            entry["error"] = str(err)
        cache[str(path)] = entry
        if tick is not None:
            tick(done)
    tracks: list[Track] = []
    overrides = {root: load_overrides(root) for root in {root for root, _, _ in found}}
    for root, path, _ in found:
        entry = cache[str(path)]
        entries[str(path)] = entry
        if "error" in entry:
            logger.warning("skipping unreadable track %s", entry["error"])
            continue
        tags = Tags(**entry["tags"])
        relative = path.relative_to(root)
        point, mood, placed_by = place(relative, tags, overrides[root].get(relative.as_posix()))
        tracks.append(
            Track(
                id=f"{root.name}/{relative.as_posix()}",
                path=path,
                title=tags.title or path.stem.replace("_", " "),
                artist=tags.artist or "unknown artist",
                duration=tags.duration,
                genre=(tags.genre or "").lower(),
                point=point,
                mood=mood,
                placed_by=placed_by,
            )
        )
    if cache_path is not None and (to_read or set(cache) != set(entries)):
        _save_cache(cache_path, entries)
    logger.info(
        "music library: %d tracks in %d folder(s) (%d read, %d from cache)",
        len(tracks),
        len(folders),
        len(to_read),
        len(found) - len(to_read),
    )
    return Library(tracks)


def _default_progress(total: int) -> Callable[[int], None] | None:
    return progress_bar(total) if total >= PROGRESS_MIN_FILES else None


def _fresh(entry: Mapping[str, Any] | None, stat: os.stat_result) -> bool:
    return (
        entry is not None
        and entry.get("mtime_ns") == stat.st_mtime_ns
        and entry.get("size") == stat.st_size
    )


def _load_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("%s: unreadable library cache (%s); rescanning everything", path, err)
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    files = data.get("files")
    return dict(files) if isinstance(files, dict) else {}


def _save_cache(path: Path, entries: Mapping[str, Any]) -> None:
    """Write atomically (temp file, then rename) so a crash never leaves half a cache."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_text(path, json.dumps({"version": CACHE_VERSION, "files": entries}))
    except OSError as err:
        logger.warning("%s: cannot write the library cache (%s)", path, err)
