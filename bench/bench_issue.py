"""Receipt issuance end to end on PostgreSQL, per second, in one process (issue 3).

Each issuance is what the worker does for a paid order: lock the order, check the certificate,
take the next number (row lock on the counter), build and sign the XML, validate it against the
XSD, store it, write the callback to the outbox, commit. Baseline in the same run: raw RSA-2048
signatures per second with the same key.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bench.common import Table, rate

ROOT = Path(__file__).resolve().parents[1]


def run(table: Table, n: int = 1000) -> None:
    saved = dict(os.environ)
    try:
        _run(table, n)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(table: Table, n: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from infra import PostgresServer

    with PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
        url = pg.create_database("bench_issue")
        os.environ.update(
            {"MOTCUA_DATABASE_URL": url, "MOTCUA_DATA_DIR": tmp, "MOTCUA_TASK_EAGER": "true"}
        )
        from settings.config import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        from api.demo import seed
        from payments.agencies import agency_by_code
        from payments.issuing import issue_for_order
        from payments.orders import FeeRequest, OrderRequest, create_order, mark_succeeded
        from settings.db import session_scope, utcnow
        from settings.migrate import upgrade
        from signing.keys import load_key_source

        upgrade(url)
        seed(settings)
        ids: list[str] = []
        with session_scope() as s:
            agency = agency_by_code(s, "DEMO-HUYEN")
            key = load_key_source(agency.signing_key_ref or "")
            request = OrderRequest(
                dossier_code="B-1",
                procedure_code="1.001612",
                payer={"name": "Nguyễn Văn An", "id_number": "001090012345"},
                fees=(FeeRequest("CT-BS", 3),),
            )
            for _ in range(n):
                order = create_order(
                    s, agency, request, client_id=None, ttl=timedelta(days=1), max_amount=10**9
                )
                mark_succeeded(order, method="transfer", at=utcnow())
                ids.append(order.id)
        private = key.private_key
        raw = rate(lambda: private.sign(b"x" * 1300, padding.PKCS1v15(), hashes.SHA256()))
        start = time.perf_counter()
        for order_id in ids:
            with session_scope() as s:
                issue_for_order(s, order_id, settings)
        per_s = n / (time.perf_counter() - start)
    table.add(
        f"receipt issuance end to end on PostgreSQL ({n} paid orders, one process)",
        f"{per_s:,.0f}/s",
        f"{raw:,.0f}/s raw RSA-2048",
        f"{per_s / raw:.2f}",
        "reported",
    )


if __name__ == "__main__":
    t = Table()
    run(t)
    print(t.markdown())
