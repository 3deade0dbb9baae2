"""The embedded broker: kombu's SQLite transport, polled every 100 ms (issue 16).

With kombu's default one-second poll a lone bank notification waited up to a second for its
wake-up on the embedded default; the latency itself is measured by ``bench/bench_embedded.py``
(a lone notification → its receipt), not timed here.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from settings.config import Settings
from settings.worker import (
    EMBEDDED_BROKER_POLL_SECONDS,
    EmbeddedBrokerTransport,
    _celery_broker_url,
    configure,
)


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("MOTCUA_BROKER_URL", raising=False)
    return Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]


def test_the_embedded_broker_is_kombus_sqlite_transport_polled_faster(embedded: Settings) -> None:
    app = Celery("embedded-broker-test")
    configure(app, embedded)
    assert embedded.effective_broker_url.startswith("sqla+sqlite:///")  # what is configured
    with app.connection_for_write() as conn:
        transport = conn.transport
        assert isinstance(transport, EmbeddedBrokerTransport)
        assert isinstance(transport, kombu_sqlalchemy.Transport)
        assert transport.polling_interval == EMBEDDED_BROKER_POLL_SECONDS < 1.0
        # the same broker file, really working: a message through it and back
        queue = conn.SimpleQueue("embedded-broker-test")
        queue.put({"wake": "payments.issue_ready"})
        message = queue.get(timeout=5)
        assert message.payload == {"wake": "payments.issue_ready"}
        message.ack()
        queue.close()
    broker_file = embedded.data_dir / "broker.sqlite3"
    with sqlite3.connect(broker_file) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "amqp://guest@127.0.0.1//", "memory://"]
)
def test_other_brokers_are_left_as_configured(url: str) -> None:
    assert _celery_broker_url(url) == url


def test_an_sqla_url_keeps_its_database_part() -> None:
    url = "sqla+sqlite:////srv/motcua/broker.sqlite3"
    assert _celery_broker_url(url) == "motcua-sqla+sqlite:////srv/motcua/broker.sqlite3"
