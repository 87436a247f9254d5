"""Who may command the box over MQTT: retained commands, identity authority, floods.

Issue 16, findings 1–3, reproduced against a real mosquitto on loopback, with
the MQTT service on behavioural fakes and with the real daemon (`moodbox run`).
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from daemon_harness import Daemon, env_for, stop_cleanly
from fakes import FakeIdentity, FakeMusic
from mqtt_broker import (
    PREFIX,
    MosquittoBroker,
    Recorder,
    broker_settings,
    find_mosquitto,
    poll_until,
    started_service,
    wait_until,
)
from music_audio import write_wav
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_config
from edge.control import RemoteControls
from edge.doctor import Status, check_broker_access
from edge.errors import ConfigError
from edge.identify.store import UserStore
from edge.publish.authority import CommandAuthority, read_command_key, sign_command
from edge.publish.discovery import discovery_topic
from edge.publish.service import MqttService

KEY = b"household-key-0123456789abcdef"
DAEMON_PREFIX = "moodbox/moodbox"


def client_for(broker: MosquittoBroker, client_id: str = "stranger") -> mqtt.Client:
    """Any client the broker lets in (anonymous here), as an adversary on the LAN would be."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def send(
    client: mqtt.Client,
    command: str,
    payload: bytes | str,
    *,
    prefix: str = PREFIX,
    retain: bool = False,
) -> None:
    client.publish(f"{prefix}/{command}/set", payload, qos=1, retain=retain).wait_for_publish(5)


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def fakes() -> tuple[FakeMusic, FakeIdentity]:
    identity = FakeIdentity()
    identity.enrolled.add("Ada")
    return FakeMusic(), identity


def service_for(
    broker: MosquittoBroker, music: FakeMusic, identity: FakeIdentity, **kwargs: object
) -> MqttService:
    service, _ = started_service(
        broker, controls=RemoteControls(music=music, identity=identity), **kwargs
    )
    music.emit = identity.emit = service.emit
    return service


# --- finding 1: a retained forget deleted the user again at every restart ---


def test_a_retained_command_is_ignored_cleared_once_and_logged_once(
    persistent_mosquitto: MosquittoBroker,
    fakes: tuple[FakeMusic, FakeIdentity],
    caplog: pytest.LogCaptureFixture,
) -> None:
    music, identity = fakes
    caplog.set_level(logging.WARNING)
    stranger = client_for(persistent_mosquitto)
    # Even a correctly signed one: a command must not run again at each reconnect.
    signed = sign_command(KEY, PREFIX, "forget", "Ada")
    send(stranger, "forget", signed, retain=True)
    send(stranger, "player", "NEXT", retain=True)
    close(stranger)
    for _restart in range(2):
        service = service_for(
            persistent_mosquitto, music, identity, authority=CommandAuthority(KEY, PREFIX)
        )
        time.sleep(1.0)
        service.poll(time.monotonic())
        service.stop()
        assert identity.calls == [] and music.calls == []
        assert "Ada" in identity.enrolled
    cleared = [r for r in caplog.records if "cleared a retained command" in r.getMessage()]
    assert len(cleared) == 2  # one per topic, on the first start; nothing left at the second
    watcher = Recorder(persistent_mosquitto, f"{PREFIX}/+/set")
    time.sleep(0.5)
    assert watcher.messages == []  # the broker keeps no retained command any more
    watcher.close()


def test_retained_commands_are_counted_in_stats(
    mosquitto: MosquittoBroker, fakes: tuple[FakeMusic, FakeIdentity]
) -> None:
    music, identity = fakes
    stranger = client_for(mosquitto)
    send(stranger, "volume", "5", retain=True)
    close(stranger)
    service = service_for(mosquitto, music, identity)
    try:
        assert wait_until(lambda: service.dispatcher.retained == 1)
        recorder = Recorder(mosquitto, f"{PREFIX}/stats")
        service.publish_stats()
        stats = json.loads(recorder.topic(f"{PREFIX}/stats").text)
        assert stats["retained_commands"] == 1 and stats["invalid_commands"] == 1
        recorder.close()
        assert music.calls == []
    finally:
        service.stop()


# --- finding 2: anyone who can publish could delete or poison a user ---


def test_identity_commands_are_off_by_default(
    mosquitto: MosquittoBroker,
    fakes: tuple[FakeMusic, FakeIdentity],
    caplog: pytest.LogCaptureFixture,
) -> None:
    music, identity = fakes
    caplog.set_level(logging.WARNING, logger="edge.control")
    service = service_for(mosquitto, music, identity)
    stranger = client_for(mosquitto)
    try:
        send(stranger, "enroll", json.dumps({"name": "Ada"}))
        send(stranger, "forget", "Ada")
        send(stranger, "forget", sign_command(KEY, PREFIX, "forget", "Ada"))  # no key here
        send(stranger, "volume", "20")
        assert poll_until(service, lambda: music.calls == [("set_volume", 20)])
        assert identity.calls == []
        assert service.dispatcher.unauthorized == 3
        assert any("identity commands off" in r.getMessage() for r in caplog.records)
    finally:
        close(stranger)
        service.stop()


def test_signed_identity_commands_cannot_be_forged_or_replayed(
    mosquitto: MosquittoBroker, fakes: tuple[FakeMusic, FakeIdentity]
) -> None:
    music, identity = fakes
    service = service_for(mosquitto, music, identity, authority=CommandAuthority(KEY, PREFIX))
    # The household's own client, and a stranger who listens to everything it sends.
    home = client_for(mosquitto, "home-assistant")
    stranger = client_for(mosquitto)
    overheard = Recorder(mosquitto, f"{PREFIX}/+/set")
    try:
        send(stranger, "forget", json.dumps({"name": "Ada"}))  # unsigned
        send(stranger, "forget", sign_command(b"guessed-key-0123456789", PREFIX, "forget", "Ada"))
        genuine = sign_command(KEY, PREFIX, "enroll", "Bo")
        send(home, "enroll", genuine)
        assert poll_until(service, lambda: identity.calls == [("enroll", "Bo")])
        seen = overheard.topic(f"{PREFIX}/enroll/set").payload
        send(stranger, "enroll", seen)  # replayed word for word: nonce already used
        send(stranger, "forget", seen)  # the same signature on another command
        data = json.loads(seen)
        send(stranger, "enroll", json.dumps({**data, "name": "Ada"}))  # another name
        send(stranger, "enroll", sign_command(KEY, "moodbox/other", "enroll", "Bo"))  # other box
        stale = sign_command(KEY, PREFIX, "forget", "Ada", now=time.time() - 3600)
        send(stranger, "forget", stale)
        send(stranger, "volume", "33")
        assert poll_until(service, lambda: ("set_volume", 33) in music.calls)
        assert identity.calls == [("enroll", "Bo")]
        assert service.dispatcher.unauthorized == 7
        assert "Ada" in identity.enrolled
        send(home, "forget", sign_command(KEY, PREFIX, "forget", "Ada"))
        assert poll_until(service, lambda: ("forget", "Ada") in identity.calls)
    finally:
        overheard.close()
        close(home)
        close(stranger)
        service.stop()


def test_the_command_key_never_comes_from_config_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  host: localhost\n  identity_commands: true\n  command_key: x\n")
    with pytest.raises(ConfigError, match="command_key"):
        load_config(path, environ={})
    path.write_text("mqtt:\n  host: localhost\n  identity_commands: true\n")
    config = load_config(path, environ={})
    with pytest.raises(ConfigError, match="no command key"):
        MqttService.from_config(config, publisher=object())  # type: ignore[arg-type]
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "command_key").write_text("a" * 32 + "\n")
    assert read_command_key({"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}) == b"a" * 32
    with pytest.raises(ConfigError, match="at least 16"):
        read_command_key({"MOODBOX_COMMAND_KEY": "short"})


# --- finding 2 and 3: floods ---


def test_three_hundred_nexts_are_a_handful_of_skips(
    mosquitto: MosquittoBroker, fakes: tuple[FakeMusic, FakeIdentity]
) -> None:
    music, identity = fakes
    service = service_for(mosquitto, music, identity)
    stranger = client_for(mosquitto)
    try:
        for _ in range(300):
            stranger.publish(f"{PREFIX}/player/set", "NEXT", qos=1)
        send(stranger, "volume", "12")
        assert poll_until(service, lambda: ("set_volume", 12) in music.calls, timeout_s=15)
        nexts = sum(call == "next" for call, _ in music.calls)
        assert 10 <= nexts <= 25  # the burst, and what trickled back in while they arrived
        assert service.dispatcher.rate_limited == 300 - nexts
    finally:
        close(stranger)
        service.stop()


def test_home_assistant_births_resend_discovery_at_most_once_per_interval(
    mosquitto: MosquittoBroker,
    fakes: tuple[FakeMusic, FakeIdentity],
    caplog: pytest.LogCaptureFixture,
) -> None:
    music, identity = fakes
    caplog.set_level(logging.INFO, logger="edge.publish.service")
    topic = discovery_topic("homeassistant", "test")
    service = service_for(mosquitto, music, identity, discovery_min_interval_s=3600.0)
    recorder = Recorder(mosquitto, topic)
    stranger = client_for(mosquitto)
    try:
        recorder.topic(topic)  # the retained discovery of the start
        before = recorder.count()
        for _ in range(2000):
            stranger.publish("homeassistant/status", "online", qos=0)
        send(stranger, "volume", "9")
        assert poll_until(service, lambda: ("set_volume", 9) in music.calls, timeout_s=20)
        assert wait_until(lambda: service.discovery_suppressed >= 1000, 10)
        time.sleep(0.5)
        assert recorder.count() - before == 1  # one resend, not 2,000 (9 MB)
        online = [r for r in caplog.records if "Home Assistant is online" in r.getMessage()]
        assert len(online) == 1
    finally:
        close(stranger)
        recorder.close()
        service.stop()


def test_forget_of_unknown_names_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.control")
    controls = RemoteControls(identity=FakeIdentity())
    for index in range(50):
        controls.forget(f"nobody{index}")
    assert len([r for r in caplog.records if "no such enrolled user" in r.getMessage()]) == 1


# --- the same attacks against the real daemon ---


def enrolled_ada(state: Path, samples: int = 5) -> np.ndarray:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(samples, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with UserStore.in_state_dir(state) as store:
        store.add_embeddings("Ada", vectors)
    return vectors


def samples_of(state: Path, name: str) -> int:
    with UserStore.in_state_dir(state) as store:
        return next((u.samples for u in store.users() if u.name == name), 0)


def daemon_with_broker(tmp_path: Path, broker: MosquittoBroker, **extra: str) -> Daemon:
    env = env_for(
        tmp_path,
        Path(__file__).resolve().parents[2] / "demo" / "faces",
        MOODBOX_MQTT_HOST=broker.host,
        MOODBOX_MQTT_PORT=str(broker.port),
        MOODBOX_CAMERA_FPS="10",
        **extra,
    )
    return Daemon(tmp_path, env=env)


@pytest.fixture
def daemon_box(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    enrolled_ada(state)
    yield state


def test_daemon_a_retained_forget_does_not_delete_the_user_at_restarts(
    persistent_mosquitto: MosquittoBroker, tmp_path: Path, daemon_box: Path
) -> None:
    stranger = client_for(persistent_mosquitto)
    send(stranger, "forget", "Ada", prefix=DAEMON_PREFIX, retain=True)
    close(stranger)
    for restart in range(2):
        daemon = daemon_with_broker(tmp_path, persistent_mosquitto)
        try:
            if restart == 0:
                daemon.wait_log("cleared a retained command", timeout=120)
            else:
                daemon.wait_log("MQTT: connected", timeout=120)
                time.sleep(1)
            stop_cleanly(daemon)
        finally:
            daemon.close()
        assert samples_of(daemon_box, "Ada") == 5
        assert daemon.count_logs("forgot user") == 0
        (tmp_path / "notify.sock").unlink()


def test_daemon_an_anonymous_enroll_does_not_add_a_strangers_face(
    mosquitto: MosquittoBroker, tmp_path: Path, daemon_box: Path
) -> None:
    daemon = daemon_with_broker(tmp_path, mosquitto)
    stranger = client_for(mosquitto)
    try:
        daemon.wait_log("MQTT: connected", timeout=120)
        # The demo clip's faces are strangers to Ada's enrolment.
        send(stranger, "enroll", json.dumps({"name": "Ada"}), prefix=DAEMON_PREFIX)
        send(stranger, "forget", json.dumps({"name": "Ada"}), prefix=DAEMON_PREFIX)
        daemon.wait_log("identity commands off", timeout=30)
        time.sleep(3)  # an enrolment, had it started, takes about 3 s of frames
        assert daemon.count_logs("enrolling Ada") == 0
        stop_cleanly(daemon)
    finally:
        close(stranger)
        daemon.close()
    assert samples_of(daemon_box, "Ada") == 5


def test_daemon_three_hundred_nexts_are_not_three_hundred_skips(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    music = tmp_path / "music"
    for index, mood in enumerate(("happy", "sad", "neutral", "angry", "surprise", "fear")):
        write_wav(music / mood / f"{mood}.wav", seconds=20, freq=300 + 60 * index)
    daemon = daemon_with_broker(tmp_path, mosquitto, MOODBOX_MUSIC_FOLDERS=f"[{music}]")
    stranger = client_for(mosquitto)
    try:
        daemon.wait_for("a track", lambda: any(e["type"] == "track_started" for e in daemon.events))
        daemon.wait_log("MQTT: connected", timeout=60)
        for _ in range(300):
            stranger.publish(f"{DAEMON_PREFIX}/player/set", "NEXT", qos=1)
        daemon.wait_log("ignoring player command: rate limited", timeout=60)
        time.sleep(2)
        stop_cleanly(daemon)
    finally:
        close(stranger)
        daemon.close()
    with sqlite3.connect(tmp_path / "state" / "music.sqlite") as db:
        (skips,) = db.execute("SELECT count(*) FROM feedback WHERE kind = 'skip'").fetchone()
    # The household profile gets one row per skip; the burst is 10, one more per 2 s.
    assert 1 <= skips <= 25, skips


# --- what the README's broker set-up gives: doctor's warnings, the ACL ---

README_ACL = """\
user homeassistant
topic readwrite homeassistant/#
topic read moodbox/#
topic write moodbox/moodbox/+/set

user moodbox
topic readwrite homeassistant/#
topic readwrite moodbox/moodbox/#
"""


def readme_acl() -> str:
    """The ACL block exactly as the README shows it (a test keeps them equal)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("# /etc/mosquitto/acl\n") + len("# /etc/mosquitto/acl\n")
    return readme[start : readme.index("```", start)]


def test_readme_acl_is_the_one_tested() -> None:
    assert readme_acl() == README_ACL


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    passwd = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin"
    )
    if passwd is None or find_mosquitto() is None:
        pytest.skip("mosquitto_passwd not installed")
    passwords = tmp_path / "passwords"
    for index, user in enumerate(("homeassistant", "moodbox", "guest")):
        flags = ["-c", "-b"] if index == 0 else ["-b"]
        subprocess.run([passwd, *flags, str(passwords), user, f"{user}-pw"], check=True)
    passwords.chmod(0o600)
    acl = tmp_path / "acl"
    acl.write_text(README_ACL.replace("moodbox/moodbox/", f"{PREFIX}/"))  # the tests' prefix
    acl.chmod(0o600)
    workdir = tmp_path / "secured"
    workdir.mkdir()
    broker = MosquittoBroker(
        workdir, anonymous=False, extra_config=f"password_file {passwords}\nacl_file {acl}\n"
    )
    with broker:
        yield broker


def user_client(broker: MosquittoBroker, user: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-client")
    client.username_pw_set(user, f"{user}-pw")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_with_the_readme_acl_only_home_assistant_commands_the_box(
    secured_broker: MosquittoBroker, fakes: tuple[FakeMusic, FakeIdentity]
) -> None:
    music, identity = fakes
    settings = broker_settings(
        secured_broker,
        username="moodbox",
        password="moodbox-pw",  # noqa: S106 - a test broker's password
        will_topic=None,
    )
    service, _ = started_service(
        secured_broker, settings=settings, controls=RemoteControls(music=music, identity=identity)
    )
    guest, home = user_client(secured_broker, "guest"), user_client(secured_broker, "homeassistant")
    try:
        send(guest, "volume", "66", prefix="moodbox/test")
        time.sleep(0.5)
        send(home, "volume", "44", prefix="moodbox/test")
        assert poll_until(service, lambda: ("set_volume", 44) in music.calls)
        assert ("set_volume", 66) not in music.calls  # the broker dropped the guest's publish
    finally:
        close(guest)
        close(home)
        service.stop()


def doctor_config(tmp_path: Path, broker: MosquittoBroker, extra: str = "") -> Path:
    path = tmp_path / "doctor.yaml"
    path.write_text(f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n{extra}")
    return path


def test_doctor_warns_when_the_broker_lets_anonymous_clients_in(
    mosquitto: MosquittoBroker, tmp_path: Path, clean_env: None
) -> None:
    results = check_broker_access(load_config(doctor_config(tmp_path, mosquitto)))
    assert [r.status for r in results] == [Status.WARN]
    assert "anonymous" in results[0].detail


def test_doctor_passes_a_closed_broker_but_warns_of_a_password_without_tls(
    secured_broker: MosquittoBroker,
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOODBOX_MQTT_PASSWORD", "moodbox-pw")
    config = load_config(doctor_config(tmp_path, secured_broker, "  username: moodbox\n"))
    results = {r.check: r for r in check_broker_access(config)}
    assert results["broker access"].status is Status.PASS
    assert results["broker password"].status is Status.WARN
    assert "without TLS" in results["broker password"].detail


def test_a_signature_made_from_the_readme_recipe_is_accepted() -> None:
    import hashlib
    import hmac

    ts, nonce = round(time.time(), 3), "0123456789abcdef"
    text = f"moodbox-command-v1\n{PREFIX}\nforget\nAda\n{ts:.3f}\n{nonce}"
    sig = hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()
    authority = CommandAuthority(KEY, PREFIX)
    payload = {"name": "Ada", "ts": ts, "nonce": nonce, "sig": sig}
    assert authority.verify("forget", payload) == "Ada"
