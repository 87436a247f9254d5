"""Library scan: real files, tags, placement order, cache and incremental rescan, bad files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from music_audio import write_corrupt, write_wav

from edge.music.library import Tags, place, read_tags, scan_library
from edge.music.moods import EMOTION_POINTS, MOOD_POINTS, Point


def _progress_recorder(calls: list[int]) -> Callable[[int], Callable[[int], None] | None]:
    def factory(total: int) -> Callable[[int], None] | None:
        calls.append(total)
        return None

    return factory


def test_scan_places_by_override_then_folder_then_default(tmp_path: Path) -> None:
    root = tmp_path / "music"
    write_wav(root / "happy" / "a.wav")
    write_wav(root / "sad" / "b.wav")
    write_wav(root / "sad" / "c.wav")
    write_wav(root / "misc" / "d.wav")
    (root / "moods.yaml").write_text(
        "sad/c.wav: calm\nmisc/d.wav: {valence: 0.3, arousal: 0.9}\n", encoding="utf-8"
    )
    library = scan_library([root], cache_path=tmp_path / "cache.json", progress=lambda n: None)
    by_name = {t.path.name: t for t in library.tracks}
    assert by_name["a.wav"].point == MOOD_POINTS["happy"]
    assert by_name["a.wav"].placed_by == "folder"
    assert by_name["b.wav"].mood == "sad"
    assert by_name["c.wav"].placed_by == "override"
    assert by_name["c.wav"].point == MOOD_POINTS["calm"]
    assert by_name["d.wav"].point == Point(0.3, 0.9)
    assert by_name["a.wav"].duration == pytest.approx(0.3, abs=0.01)
    assert by_name["a.wav"].title == "a"
    assert library.find("music/happy/a.wav") is by_name["a.wav"]
    assert library.find(str(root / "happy" / "a.wav")) is by_name["a.wav"]


def test_tags_place_when_no_folder_mood() -> None:
    mood = place(Path("x.ogg"), Tags(duration=1, mood="Melancholy"), None)
    assert mood[2] == "tags"
    assert mood[1] == "melancholy"
    genre = place(Path("x.ogg"), Tags(duration=1, genre="Heavy Metal", bpm=180), None)
    assert genre[2] == "genre"
    assert genre[0].arousal > 0.8
    slow = place(Path("x.ogg"), Tags(duration=1, bpm=60), None)
    assert slow[0].arousal < 0
    assert place(Path("x.ogg"), Tags(duration=1), None)[0] == EMOTION_POINTS["neutral"]


def test_corrupt_and_empty_files_are_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "music"
    write_wav(root / "calm" / "good.wav")
    write_corrupt(root / "calm" / "broken.ogg")
    (root / "calm" / "empty.mp3").write_bytes(b"")
    write_corrupt(root / "calm" / "noise.flac")
    with caplog.at_level(logging.WARNING):
        library = scan_library([root, tmp_path / "missing"], progress=lambda n: None)
    assert [t.path.name for t in library.tracks] == ["good.wav"]
    skipped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(skipped) == 3
    assert any("does not exist" in r.getMessage() for r in caplog.records)


def test_rescan_reads_only_new_or_changed_files(tmp_path: Path) -> None:
    root = tmp_path / "music"
    cache = tmp_path / "state" / "cache.json"
    for i in range(3):
        write_wav(root / "happy" / f"{i}.wav")
    calls: list[int] = []
    assert len(scan_library([root], cache_path=cache, progress=_progress_recorder(calls))) == 3
    assert calls == [3]
    assert cache.is_file()
    assert len(scan_library([root], cache_path=cache, progress=_progress_recorder(calls))) == 3
    assert calls == [3]  # nothing to read: no progress at all
    write_wav(root / "happy" / "0.wav", seconds=0.6)  # changed size
    write_wav(root / "sad" / "new.wav")
    (root / "happy" / "2.wav").unlink()
    library = scan_library([root], cache_path=cache, progress=_progress_recorder(calls))
    assert calls == [3, 2]
    assert sorted(t.id for t in library.tracks) == [
        "music/happy/0.wav",
        "music/happy/1.wav",
        "music/sad/new.wav",
    ]
    assert library.by_id["music/happy/0.wav"].duration == pytest.approx(0.6, abs=0.01)


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "music"
    write_wav(root / "happy" / "a.wav")
    cache = tmp_path / "cache.json"
    cache.write_text("{not json", encoding="utf-8")
    assert len(scan_library([root], cache_path=cache, progress=lambda n: None)) == 1


def test_demo_library_is_tagged_and_covers_every_emotion_but_disgust(repo_root: Path) -> None:
    library = scan_library([repo_root / "music"], progress=lambda n: None)
    moods = {t.mood for t in library.tracks}
    assert {"happy", "sad", "calm", "angry", "fear", "surprise", "neutral"} <= moods
    track = library.tracks[0]
    tags = read_tags(track.path)
    assert tags.artist == "moodbox demo synth"
    assert tags.bpm is not None and tags.bpm > 0
    assert sum(t.path.stat().st_size for t in library.tracks) < 3_000_000
