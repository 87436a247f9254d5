"""People sync without a network: two stores, two replicas, the messages passed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.identify.forget import forget_user
from edge.identify.store import UserStore
from edge.identify.sync import (
    HouseholdCipher,
    Outgoing,
    PeopleReplica,
    RefusedError,
    decode_record,
    encode_record,
    read_household_key,
)
from edge.stats import Stats

KEY = b"unit-test-household-key-0123456789abcdef"
ROOT = "moodbox/household"


class Box:
    def __init__(self, tmp_path: Path, name: str, key: bytes = KEY) -> None:
        self.store = UserStore.in_state_dir(tmp_path / name)
        self.stats = Stats()
        self.replica = PeopleReplica(
            self.store, HouseholdCipher(key), origin=name, topic_root=ROOT, stats=self.stats
        )

    def deliver(self, messages: list[Outgoing]) -> list[Outgoing]:
        return [out for m in messages for out in self.replica.receive(m.topic, m.payload)]


def vectors(seed: int, n: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)


@pytest.fixture
def boxes(tmp_path: Path) -> tuple[Box, Box]:
    return Box(tmp_path, "living"), Box(tmp_path, "kitchen")


def test_a_rename_reaches_the_other_box_under_the_same_id(boxes: tuple[Box, Box]) -> None:
    a, b = boxes
    a.store.add_embeddings("Ada", vectors(1))
    first = a.replica.local_changes()
    b.deliver(first)
    assert a.store.rename("Ada", "Ada L")
    renamed = a.replica.local_changes()
    assert [m.topic for m in renamed] == [m.topic for m in first]  # the same person
    b.deliver(renamed)
    assert set(b.store.embeddings()) == {"Ada L"}
    assert b.store.find("ada l") == "Ada L"  # found the way names compare
    assert forget_user(b.store, "ADA L") == "Ada L"


def test_an_enrolment_reaches_the_other_box_and_a_forget_follows(boxes: tuple[Box, Box]) -> None:
    a, b = boxes
    a.store.add_embeddings("Ada", vectors(1))
    sent = a.replica.local_changes()
    assert len(sent) == 1 and sent[0].topic.startswith(f"{ROOT}/people/")
    assert "ada" not in sent[0].topic.lower()
    assert b.deliver(sent) == []
    assert np.array_equal(b.store.embeddings()["Ada"], a.store.embeddings()["Ada"])
    assert b.replica.local_changes() == []  # taken, not a change of B's own

    assert forget_user(b.store, "ADA") == "Ada"
    tomb = b.replica.local_changes()
    assert len(tomb) == 1 and tomb[0].topic == sent[0].topic
    a.deliver(tomb)
    assert a.store.users() == []
    record = a.store.sync_record(sent[0].topic.rsplit("/", 1)[1])
    assert record is not None and record.deleted and record.version == 2

    # The old live message again (the broker's copy, or a replay): it loses, and A
    # answers with the tombstone.
    answer = a.deliver(sent)
    assert a.store.users() == []
    assert len(answer) == 1 and b.deliver(answer) == []


def test_enrolling_again_after_a_forget_wins_over_the_tombstone(boxes: tuple[Box, Box]) -> None:
    a, b = boxes
    a.store.add_embeddings("Ada", vectors(1))
    b.deliver(a.replica.local_changes())
    forget_user(a.store, "Ada")
    b.deliver(a.replica.local_changes())
    b.store.add_embeddings("Ada", vectors(2))
    again = b.replica.local_changes()
    a.deliver(again)
    assert [u.name for u in a.store.users()] == ["Ada"]
    assert np.array_equal(a.store.embeddings()["Ada"], vectors(2))


def test_concurrent_versions_end_the_same_on_both_boxes(boxes: tuple[Box, Box]) -> None:
    a, b = boxes
    a.store.add_embeddings("Ada", vectors(1))
    b.store.add_embeddings("ada", vectors(2))
    from_a, from_b = a.replica.local_changes(), b.replica.local_changes()
    assert from_a[0].topic == from_b[0].topic  # one person, one id, at every box
    a.deliver(from_b)
    b.deliver(from_a)
    # Both wrote version 1: the higher origin ("living") wins on both boxes.
    assert np.array_equal(a.store.embeddings()["Ada"], vectors(1))
    assert np.array_equal(b.store.embeddings()["Ada"], vectors(1))


def test_reconcile_puts_back_what_the_broker_lost(boxes: tuple[Box, Box]) -> None:
    a, _b = boxes
    a.store.add_embeddings("Ada", vectors(1))
    a.replica.local_changes()
    a.replica.new_session()  # a broker that restarted empty
    assert len(a.replica.reconcile()) == 1
    a.replica.new_session()
    a.deliver(a.replica.reconcile())  # the broker still had it: nothing to put back
    assert a.replica.reconcile() == []


def test_messages_without_the_key_are_refused_and_counted(tmp_path: Path) -> None:
    a, b = Box(tmp_path, "living"), Box(tmp_path, "kitchen")
    stranger = Box(tmp_path, "attacker", key=b"some-other-household-key-0123456789abcd")
    stranger.store.add_embeddings("Mallory", vectors(3))
    forged = stranger.replica.local_changes()
    a.store.add_embeddings("Ada", vectors(1))
    genuine = a.replica.local_changes()[0]
    moved = Outgoing(forged[0].topic, genuine.payload)  # a real message on another topic
    flipped = bytearray(genuine.payload)
    flipped[-1] ^= 1
    for message in [*forged, moved, Outgoing(genuine.topic, bytes(flipped))]:
        assert b.replica.receive(message.topic, message.payload) == []
    assert b.store.users() == []
    assert b.stats.counters["sync_refused"] == 3


def test_plain_text_is_padded_and_strictly_decoded() -> None:
    from edge.identify.store import SyncRecord

    record = SyncRecord("0" * 32, 3, "living", "Ada", vectors(1))
    plain = encode_record(record)
    assert len(plain) % 4096 == 0
    back = decode_record(plain)
    assert back.order == (3, "living") and np.array_equal(back.vectors, record.vectors)
    assert len(encode_record(SyncRecord("0" * 32, 4, "living"))) == 4096
    for bad in (b"[]", b'{"format":1,"id":"x"}', b"\xff"):
        with pytest.raises(RefusedError):
            decode_record(bad)


def test_the_household_key_comes_from_the_environment_or_a_credential(tmp_path: Path) -> None:
    assert read_household_key({}) is None
    assert read_household_key({"MOODBOX_HOUSEHOLD_KEY": " k" * 20}) == ("k " * 19 + "k").encode()
    (tmp_path / "household_key").write_text("c" * 64 + "\n")
    assert read_household_key({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == b"c" * 64
    with pytest.raises(ConfigError, match="at least 32"):
        read_household_key({"MOODBOX_HOUSEHOLD_KEY": "short"})


def test_an_unreadable_copy_of_a_person_we_hold_is_replaced_at_most_once_per_interval(
    tmp_path: Path,
) -> None:
    a = Box(tmp_path, "living")
    now = [0.0]
    a.replica = PeopleReplica(
        a.store,
        HouseholdCipher(KEY),
        origin="living",
        topic_root=ROOT,
        stats=a.stats,
        clock=lambda: now[0],
    )
    a.store.add_embeddings("Ada", vectors(1))
    genuine = a.replica.local_changes()[0]
    junk = Outgoing(genuine.topic, b"MBP1" + bytes(60))
    assert a.deliver([junk]) != []  # ours goes back over it
    now[0] = 10.0
    assert a.deliver([junk]) == []  # a box with another key would loop with us: not again yet
    now[0] = 31.0
    restored = a.deliver([junk])
    assert len(restored) == 1 and restored[0].topic == genuine.topic
    assert a.deliver([Outgoing(genuine.topic, b"")]) != []  # deleted from the broker: put back
    assert a.stats.counters["sync_refused"] == 3


def test_sync_without_a_broker_or_a_key_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    from edge.config import load_config
    from edge.publish.people import PeopleSyncService

    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"general:\n  state_dir: {tmp_path / 'state'}\nrooms:\n  sync: true\n")
    with pytest.raises(ConfigError, match=r"mqtt\.host"):
        PeopleSyncService.from_config(load_config(config_file, environ={}))
    with_broker = load_config(config_file, environ={"MOODBOX_MQTT_HOST": "127.0.0.1"})
    with pytest.raises(ConfigError, match="no household key"):
        PeopleSyncService.from_config(with_broker)
    monkeypatch.setenv("MOODBOX_HOUSEHOLD_KEY", "k" * 32)
    service = PeopleSyncService.from_config(with_broker)
    # Its own client id beside the box's (device_id defaults to the host name).
    assert service.settings.client_id == f"moodbox-{with_broker.general.device_id}-people"
    assert service.settings.will_topic is None
    service.replica.store.close()


def test_a_store_from_before_sync_opens_and_shares_everyone_once_sync_is_on(
    tmp_path: Path,
) -> None:
    import sqlite3

    from edge.identify import store as store_module

    path = tmp_path / "state" / "users.sqlite3"
    path.parent.mkdir(mode=0o700)
    old = sqlite3.connect(path)
    old.executescript(store_module._SCHEMA_V1)  # the tables as a release before sync made them
    old.execute("ALTER TABLE users ADD COLUMN fold TEXT")
    old.execute("INSERT INTO users (name, fold, created) VALUES ('Ada', 'ada', 1.0)")
    old.execute(
        "INSERT INTO embeddings (user_id, dim, vector, created) VALUES (1, 128, ?, 1.0)",
        (vectors(1, 1).tobytes(),),
    )
    old.commit()
    old.close()
    with UserStore(path) as store:
        replica = PeopleReplica(store, HouseholdCipher(KEY), origin="living", topic_root=ROOT)
        shared = replica.local_changes()
        assert len(shared) == 1
        record = store.sync_record(shared[0].topic.rsplit("/", 1)[1])
        assert record is not None and record.name == "Ada" and record.version == 1
        assert replica.local_changes() == []
