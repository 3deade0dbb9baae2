"""An agency's own statement profiles, stored as JSON in ``statement_profiles`` (issue 18).

Agency admins make them on the admin page from a sample of their bank's export, because the
built-in bank layouts are reconstructed and banks change their exports: the agency's own file is
the only confirmation there is. The same checks apply to every path in: a profile is read with
:func:`~payments.statement_profiles.profile_from_json` before it is stored, and a stored name
can be neither a built-in name nor another profile's of the same agency.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payments.errors import NotFound, PaymentsError
from payments.models import StatementProfile as StoredProfile
from payments.statement_profiles import (
    BUILT_IN_PROFILES,
    StatementProfile,
    profile_by_name,
    profile_from_json,
)

__all__ = [
    "ProfileNameTaken",
    "agency_profiles",
    "delete_profile",
    "resolve_profile",
    "save_profile",
    "stored_profiles",
]


class ProfileNameTaken(PaymentsError):
    code = "statement_profile_exists"
    status = 409
    title_vi = "Tên mẫu cột đã được dùng"
    title_en = "A statement profile of that name exists"


def stored_profiles(session: Session, agency_id: str) -> list[StoredProfile]:
    """The agency's stored rows, by name."""
    return list(
        session.scalars(
            select(StoredProfile)
            .where(StoredProfile.agency_id == agency_id)
            .order_by(StoredProfile.name)
        )
    )


def agency_profiles(session: Session, agency_id: str) -> dict[str, StatementProfile]:
    """Name → profile for the agency's stored profiles that still read as valid ones (a row
    that no longer does is left out here and flagged on the admin page, never half-used)."""
    found: dict[str, StatementProfile] = {}
    for row in stored_profiles(session, agency_id):
        try:
            found[row.name] = profile_from_json({**row.profile, "name": row.name})
        except PaymentsError:
            continue
    return found


def resolve_profile(session: Session, agency_id: str, name: str | None) -> StatementProfile:
    """``--profile NAME``: a built-in profile, else one of the agency's own."""
    if name is None or name.strip().lower() in BUILT_IN_PROFILES:
        return profile_by_name(name)
    return profile_by_name(name, agency_profiles(session, agency_id))


def save_profile(
    session: Session,
    agency_id: str,
    data: Mapping[str, Any],
    *,
    created_by: str,
    now: datetime,
) -> StoredProfile:
    """Checks and stores a new profile; the name must be free (built-in or the agency's)."""
    profile = profile_from_json(data)
    if profile.name in BUILT_IN_PROFILES:
        raise ProfileNameTaken(
            f"{profile.name!r} is a built-in profile: choose another name / {profile.name!r} là "
            "mẫu có sẵn: hãy đặt tên khác"
        )
    stored = profile.to_json()
    stored["unconfirmed"] = False  # checked by the agency on its own sample before saving
    row = StoredProfile(
        agency_id=agency_id,
        name=profile.name,
        profile=stored,
        created_by=created_by[:64],
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise ProfileNameTaken(
            f"the agency already has a profile {profile.name!r}: delete it first or choose "
            f"another name / đơn vị đã có mẫu {profile.name!r}: hãy xóa mẫu cũ hoặc đặt tên khác"
        ) from exc
    return row


def delete_profile(session: Session, agency_id: str, profile_id: str) -> StoredProfile:
    """Deletes one of the agency's profiles (another agency's id is not found, as a missing
    one); statements imported with it keep what they imported."""
    row = session.get(StoredProfile, profile_id[:32])
    if row is None or row.agency_id != agency_id:
        raise NotFound("Không tìm thấy mẫu cột / statement profile not found")
    session.delete(row)
    session.flush()
    return row
