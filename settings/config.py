"""Settings read from ``MOTCUA_*`` environment variables and ``.env``.

Two profiles exist. ``embedded`` (the default) needs no other service: a SQLite file under
``MOTCUA_DATA_DIR``, a broker that lives in a SQLite file too, development certificates and the
bank / tax-authority sandboxes. ``production`` needs PostgreSQL and Redis and refuses to boot
with anything that is only safe on a laptop (see :meth:`Settings.production_problems`).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings.errors import UnsafeProductionConfig
from settings.hosts import host_of, is_loopback_host

DEFAULT_SECRET = "change-me-development-only"  # noqa: S105 - the sentinel production rejects


class Profile(StrEnum):
    EMBEDDED = "embedded"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every tunable of the service; the README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="MOTCUA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    profile: Profile = Profile.EMBEDDED
    data_dir: Path = Field(default=Path(".data"), description="SQLite file, keys, caches")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to SQLite under data_dir"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to a SQLite-file broker when embedded"
    )
    secret_key: SecretStr = Field(default=SecretStr(DEFAULT_SECRET))
    public_base_url: str = Field(
        default="http://127.0.0.1:8000", description="Base of pay_url, image_url and QR links"
    )
    sandboxes_enabled: bool | None = Field(
        default=None,
        description="Bank/tax sandboxes; default on when embedded, never in production",
    )
    allow_dev_certificates: bool | None = Field(
        default=None, description="Accept development (not legally valid) signing certificates"
    )
    default_timezone: str = "Asia/Ho_Chi_Minh"
    order_ttl_minutes: int = Field(default=24 * 60, ge=5, description="Payment order lifetime")
    max_order_amount: int = Field(default=500_000_000, gt=0, description="VND, per order")
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    rate_limit_lookup_per_minute: int = Field(
        default=20, ge=1, description="Public receipt look-ups per client IP per minute"
    )
    rate_limit_sign_in_per_minute: int = Field(
        default=10, ge=1, description="Staff sign-in attempts per client IP per minute"
    )
    rate_limit_pp_per_minute: int = Field(
        default=600, ge=1, description="PP-DVCQG messages per partner IP per minute"
    )
    task_eager: bool = Field(
        default=False, description="Run background tasks inline (tests and one-off scripts)"
    )
    run_worker_in_serve: bool = Field(
        default=True, description="embedded: `motcua serve` also runs the worker and scheduler"
    )
    log_level: str = "INFO"
    tax_authority_url: str | None = Field(
        default=None,
        description="Tax-authority (or T-VAN) endpoint; embedded default: the local sandbox",
    )
    tax_sender_code: str = Field(
        default="MOTCUAPAY", pattern=r"^[A-Z0-9]{3,20}$", description="MNGui of our messages"
    )
    tax_receiver_code: str = Field(default="TCT", pattern=r"^[A-Z0-9]{2,20}$")
    tax_sandbox_port: int = Field(default=8099, description="Port of the embedded sandbox")
    tax_document_version: str = Field(
        default="2.1.0",
        pattern=r"^2\.1\.[01]$",
        description="PBan of the documents and TDiep messages in the confirmed formats "
        "(Decision 1271/QĐ-CT): 2.1.0, or 2.1.1 as some 2026 clients send",
    )
    tax_summary_message_type: str = Field(
        default="400",
        pattern=r"^\d{3}$",
        description="MLTDiep of 01/TH-BLĐT: UNCONFIRMED (nothing public gives it; 400 by analogy "
        "with the invoice summary)",
    )
    tax_summary_result_type: str = Field(
        default="204",
        pattern=r"^\d{3}$",
        description="MLTDiep of the authority's result for 01/TH-BLĐT: UNCONFIRMED (204, by "
        "analogy)",
    )
    receipt_mapping_switch_date: date | None = Field(
        default=date(2027, 1, 1),
        description="Agency-local date from which an agency that issued receipts in mapping 0.1 "
        "issues them in mapping 0.2; an agency with no 0.1 receipt starts with 0.2 at once",
    )
    close_time: str = Field(
        default="23:30", pattern=r"^\d{2}:\d{2}$", description="Local time of the daily close"
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server; receipts e-mailed when set"
    )
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="bienlai@motcua-pay.local", description="From address")
    card_api_base: str | None = Field(
        default=None, description="Stripe-compatible API base URL; card payments off when unset"
    )
    card_secret_key: SecretStr | None = Field(default=None, description="Card gateway secret key")
    card_webhook_secret: SecretStr | None = Field(
        default=None, description="Signing secret of the card gateway's webhook endpoint"
    )
    card_dialect: str = Field(
        default="stripe", description="'stripe', or 'localstripe' for the local test server"
    )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "motcua.sqlite3"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.sqlite_path.resolve()}"

    @property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        if self.profile is Profile.PRODUCTION:
            return "redis://127.0.0.1:6379/0"
        return f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite3').resolve()}"

    @property
    def sandboxes_on(self) -> bool:
        if self.profile is Profile.PRODUCTION:
            return False
        return True if self.sandboxes_enabled is None else self.sandboxes_enabled

    @property
    def dev_certificates_allowed(self) -> bool:
        if self.profile is Profile.PRODUCTION:
            return False
        return True if self.allow_dev_certificates is None else self.allow_dev_certificates

    @property
    def effective_tax_authority_url(self) -> str | None:
        if self.tax_authority_url:
            return self.tax_authority_url
        if self.sandboxes_on:
            return f"http://127.0.0.1:{self.tax_sandbox_port}"
        return None

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.default_timezone)

    def production_problems(self) -> list[str]:
        """Why this configuration must not run as production (empty when it may)."""
        if self.profile is not Profile.PRODUCTION:
            return []
        problems: list[str] = []
        url = self.effective_database_url
        if url.startswith("sqlite"):
            problems.append("database is SQLite; set MOTCUA_DATABASE_URL to PostgreSQL")
        if not url.startswith("postgresql"):
            problems.append("database must be PostgreSQL")
        if not self.effective_broker_url.startswith(("redis://", "rediss://")):
            problems.append("broker must be Redis (MOTCUA_BROKER_URL=redis://...)")
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET or len(secret) < 32:
            problems.append("secret key is the default or shorter than 32 characters")
        if self.sandboxes_enabled:
            problems.append("sandboxes cannot be enabled in production")
        if self.allow_dev_certificates:
            problems.append("development certificates cannot be allowed in production")
        if self.task_eager:
            problems.append("eager tasks are for tests only")
        if self.tax_authority_url and is_loopback_host(host_of(self.tax_authority_url)):
            problems.append("the tax authority endpoint points at a local sandbox")
        return problems

    def check(self) -> Settings:
        problems = self.production_problems()
        if problems:
            raise UnsafeProductionConfig(problems)
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings().check()
