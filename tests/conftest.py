"""Shared fixtures: repository paths, real data from ../shared/data, test configs."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, Recorder, find_mosquitto

ROOT = Path(__file__).resolve().parent.parent
# Not a MOODBOX_* name: those are config overrides, and an unknown one is an error.
DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
TEST_DATA = Path(__file__).resolve().parent / "data"

# Headless SDL for every test that touches pygame.
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its tier folder, so `pytest -m unit` or `-m integration` picks one."""
    for item in items:
        tier = item.path.parent.name
        if tier in ("unit", "integration"):
            item.add_marker(tier)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA} (set SHARED_DATA_DIR)")
    return DATA


@pytest.fixture(scope="session")
def fer_private_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder-per-class tree of the first 40 PrivateTest images per class (real FER-2013)."""
    out = tmp_path_factory.mktemp("fer_private")
    taken: dict[str, int] = {}
    with tarfile.open(shared_data / "fer2013" / "fer2013-images.tar.gz") as archive:
        for member in archive:
            name = Path(member.name)
            if not member.isfile() or not name.name.startswith("PrivateTest_"):
                continue
            label = name.parent.name
            if taken.get(label, 0) >= 40:
                continue
            taken[label] = taken.get(label, 0) + 1
            target = out / label / name.name
            target.parent.mkdir(exist_ok=True)
            handle = archive.extractfile(member)
            assert handle is not None
            target.write_bytes(handle.read())
    return out


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MOODBOX_* variables from the developer's shell leak into a test."""
    for name in list(os.environ):
        if name.startswith("MOODBOX_"):
            monkeypatch.delenv(name)
    yield


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def require_mosquitto() -> None:
    """Skip without mosquitto on a developer's machine; fail in CI, which installs it."""
    if find_mosquitto() is None:
        message = "mosquitto not found: apt-get install mosquitto (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _broker(tmp_path: Path, persistence: bool) -> Iterator[MosquittoBroker]:
    require_mosquitto()
    broker = MosquittoBroker(tmp_path / "broker", persistence=persistence)
    broker.workdir.mkdir()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto on a free loopback port (no persistence: a restart forgets everything)."""
    yield from _broker(tmp_path, persistence=False)


@pytest.fixture
def recorder(mosquitto: MosquittoBroker) -> Iterator[Recorder]:
    """Every message on the test's broker, as any client without a key would see it."""
    everything = Recorder(mosquitto, "#")
    yield everything
    everything.close()


@pytest.fixture(scope="module")
def module_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One real mosquitto shared by a module's tests (for fixtures that are module-scoped)."""
    yield from _broker(tmp_path_factory.mktemp("module-broker"), persistence=False)


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto that keeps sessions and retained messages over stop/start."""
    yield from _broker(tmp_path, persistence=True)
