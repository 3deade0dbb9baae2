"""Boot-time refusals that need the database: production never signs with a development key."""

from __future__ import annotations

from sqlalchemy import Engine, select

from payments.models import Agency
from settings.db import session_scope
from settings.errors import UnsafeProductionConfig
from signing.certs import is_development
from signing.errors import SigningError
from signing.keys import load_key_source


def refuse_development_keys(engine: Engine) -> None:
    problems: list[str] = []
    with session_scope(engine) as session:
        for agency in session.scalars(select(Agency)):
            if not agency.signing_key_ref:
                continue
            try:
                key = load_key_source(agency.signing_key_ref)
            except SigningError as exc:
                problems.append(f"agency {agency.code}: signing key unusable ({exc})")
                continue
            if is_development(key.certificate):
                problems.append(f"agency {agency.code} signs with a development certificate")
    if problems:
        raise UnsafeProductionConfig(problems)
