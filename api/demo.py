"""``motcua demo``: a realistic district one-stop shop to try the product on.

Demo keys are fixed and published in the README, so the curl walk-through can be pasted as is;
that is only acceptable because ``demo`` refuses to run in the production profile.
"""

from __future__ import annotations

import functools
from datetime import date
from importlib import resources

from sqlalchemy import select

from api.keysetup import dev_init
from api.staff import StaffAccount, create_staff
from api.staff.passwords import hash_password
from payments.agencies import AgencyInput, add_agency
from payments.catalog import import_catalog
from payments.credentials import hash_key
from payments.models import ApiClient, BankFeedCredential
from settings.config import Settings
from settings.db import session_scope

__all__ = [
    "DEMO_AGENCY",
    "DEMO_API_KEY",
    "DEMO_SEPAY_KEY",
    "DEMO_STAFF",
    "DEMO_STAFF_PASSWORD",
    "seed",
]

DEMO_AGENCY = AgencyInput(
    code="DEMO-HUYEN",
    name="Ủy ban nhân dân huyện Sơn Hà (dữ liệu mẫu)",
    tax_code="0108424452",
    address="Số 1 đường Trần Hưng Đạo, thị trấn Sơn Hà, tỉnh Mẫu Sơn",
    bank_bin="970415",
    bank_account="113000012345",
    bank_account_name="UBND HUYEN SON HA",
    series="26TAB",
    template="EBL01",
)
DEMO_API_KEY = "mcp_demo_0000000000000000000000000000"
DEMO_CALLBACK_SECRET = "whsec_demo_00000000000000000000000000"  # noqa: S105
DEMO_SEPAY_KEY = "sepay_demo_000000000000000000000000"
CATALOG_FROM = date(2026, 1, 1)
DEMO_STAFF_PASSWORD = "motcua-demo-2026"  # noqa: S105 - published in the README, demo only
DEMO_STAFF: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("thuquy", "Trần Thị Thu (cán bộ một cửa)", ("clerk",)),
    ("ketoan", "Lê Văn Kế (kế toán)", ("accountant",)),
    ("ketoan2", "Phạm Thị Toán (kế toán, người duyệt)", ("accountant",)),
    ("quantri", "Hoàng Văn Trị (quản trị)", ("admin",)),
)
"""One account per role, and a second accountant for the four-eyes approvals."""


@functools.cache
def _demo_password_hash() -> str:
    """One argon2 hash for the published demo password, reused by every demo account (and
    every re-seed in this process): hashing is deliberately slow, and the password is public."""
    return hash_password(DEMO_STAFF_PASSWORD)


def seed(settings: Settings) -> str:
    """Creates or refreshes the demo data; returns the how-to-try text to print."""
    catalog = resources.files("payments").joinpath("data/demo_catalog.csv").read_bytes()
    with session_scope() as session:
        agency = add_agency(session, DEMO_AGENCY)
        result = import_catalog(session, agency, catalog, effective_from=CATALOG_FROM)
        if (
            session.scalar(select(ApiClient).where(ApiClient.key_hash == hash_key(DEMO_API_KEY)))
            is None
        ):
            session.add(
                ApiClient(
                    agency_id=agency.id,
                    name="Hệ thống một cửa điện tử (mẫu)",
                    key_prefix=DEMO_API_KEY[:12],
                    key_hash=hash_key(DEMO_API_KEY),
                    callback_secret=DEMO_CALLBACK_SECRET,
                )
            )
        if (
            session.scalar(
                select(BankFeedCredential).where(
                    BankFeedCredential.key_hash == hash_key(DEMO_SEPAY_KEY)
                )
            )
            is None
        ):
            session.add(
                BankFeedCredential(
                    agency_id=agency.id, provider="sepay", key_hash=hash_key(DEMO_SEPAY_KEY)
                )
            )
        for username, display_name, roles in DEMO_STAFF:
            exists = session.scalar(
                select(StaffAccount.id).where(StaffAccount.username == username)
            )
            if exists is None:
                create_staff(
                    session,
                    agency.id,
                    username,
                    display_name,
                    DEMO_STAFF_PASSWORD,
                    roles,
                    password_hash=_demo_password_hash(),
                )
    path, _ = dev_init(settings, DEMO_AGENCY.code)
    base = settings.public_base_url.rstrip("/")
    return f"""Demo data ready (dữ liệu mẫu đã sẵn sàng)
  agency        {DEMO_AGENCY.code}: {DEMO_AGENCY.name}, MST {DEMO_AGENCY.tax_code}
  catalogue     {result.procedures_created} new procedures, {result.fees_created} new fee \
items ({result.fees_unchanged} unchanged)
  signing key   {path} (development certificate, NOT legally valid)
  API key       {DEMO_API_KEY}
  SePay key     {DEMO_SEPAY_KEY}
  staff         {", ".join(u for u, _, _ in DEMO_STAFF)} (password {DEMO_STAFF_PASSWORD}) at \
{base}/staff/login

Try it (see README "Try the fee flow"):
  curl -s -X POST {base}/api/v1/payment-orders -H 'Authorization: Bearer {DEMO_API_KEY}' \\
    -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' \\
    -d '{{"dossier_code":"H01.22-261121-0001","procedure_code":"1.001612",\
"payer":{{"name":"Nguyễn Văn An"}},"fees":[{{"fee_code":"CT-BS","quantity":3}}]}}'
"""
