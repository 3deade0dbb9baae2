"""Shared request plumbing: settings, database sessions and client authentication."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from payments.credentials import authenticate_client
from payments.models import ApiClient
from settings.config import Settings
from settings.db import session_scope


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


def current_client(
    engine: EngineDep, authorization: Annotated[str | None, Header()] = None
) -> ApiClient:
    """Authenticates before the body is parsed, so a bad key gets 401 and nothing else."""
    with session_scope(engine) as session:
        client = authenticate_client(session, authorization)
        session.expunge(client)
        return client


ClientDep = Annotated[ApiClient, Depends(current_client)]
