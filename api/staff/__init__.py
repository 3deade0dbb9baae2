"""Staff sign-in for the agency pages (issue 6, item 1): accounts, sessions, CSRF, roles.

The pages for clerks, accountants and agency admins build on this package; it is kept apart
from the API-key authentication in :mod:`api.deps`, which serves machine clients.
"""

from __future__ import annotations

from api.staff.models import Role, StaffAccount, StaffAdminEvent, StaffSession, StaffSignIn
from api.staff.sessions import create_staff

__all__ = [
    "Role",
    "StaffAccount",
    "StaffAdminEvent",
    "StaffSession",
    "StaffSignIn",
    "create_staff",
]
