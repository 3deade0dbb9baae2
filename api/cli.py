"""The ``motcua`` command line (contract.md). Every command exits 0 on success, or non-zero
with a one-line reason on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from settings.config import Profile, Settings, get_settings
from settings.errors import ProblemError, SettingsError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="motcua-pay: phí, lệ phí và biên lai điện tử"
)
db_app = typer.Typer(no_args_is_help=True, help="Database")
agency_app = typer.Typer(no_args_is_help=True, help="Collecting organisations (đơn vị thu)")
keys_app = typer.Typer(no_args_is_help=True, help="Signing keys and certificates")
catalog_app = typer.Typer(no_args_is_help=True, help="Fee catalogue (danh mục phí, lệ phí)")
client_app = typer.Typer(no_args_is_help=True, help="One-stop API clients")
feed_app = typer.Typer(no_args_is_help=True, help="Bank-feed credentials")
app.add_typer(db_app, name="db")
app.add_typer(agency_app, name="agency")
app.add_typer(keys_app, name="keys")
app.add_typer(catalog_app, name="catalog")
app.add_typer(client_app, name="client")
app.add_typer(feed_app, name="bank-feed")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"motcua: {message}", err=True)
    raise typer.Exit(code)


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        fail(str(exc))


def upgrade_db(settings: Settings) -> None:
    from settings.migrate import upgrade

    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations (idempotent)."""
    settings = settings_or_fail()
    upgrade_db(settings)
    typer.echo("database is at the latest revision")


@agency_app.command("add")
def agency_add(
    code: Annotated[str, typer.Option(help="Short code, e.g. HUYEN-DA")],
    name: Annotated[str, typer.Option(help="Legal name printed on receipts")],
    tax_code: Annotated[str, typer.Option("--tax-code", help="MST, 10 or 13 digits")],
    address: Annotated[str, typer.Option()],
    bank_bin: Annotated[str, typer.Option("--bank-bin", help="NAPAS BIN, 6 digits")],
    bank_account: Annotated[str, typer.Option("--bank-account")],
    bank_account_name: Annotated[str, typer.Option("--bank-account-name")],
    series: Annotated[str, typer.Option(help="Receipt series, e.g. 26TAB")],
    template: Annotated[str, typer.Option(help="EBL01 or EBL02")] = "EBL01",
    time_zone: Annotated[str, typer.Option("--time-zone")] = "Asia/Ho_Chi_Minh",
) -> None:
    """Register (or update) a collecting organisation; the MST is validated."""
    from payments.agencies import AgencyInput, add_agency
    from settings.db import session_scope

    settings_or_fail()
    with session_scope() as session:
        agency = add_agency(
            session,
            AgencyInput(
                code=code,
                name=name,
                tax_code=tax_code,
                address=address,
                bank_bin=bank_bin,
                bank_account=bank_account,
                bank_account_name=bank_account_name,
                series=series,
                template=template,
                time_zone=time_zone,
            ),
        )
        typer.echo(f"agency {agency.code} ({agency.name}, MST {agency.tax_code}) saved")


@agency_app.command("claim-auto-approve")
def agency_claim_auto_approve(
    agency: Annotated[str, typer.Option(help="Agency code")],
    days: Annotated[int, typer.Option(help="Credits at most this many days old; 0 = off")],
) -> None:
    """Citizens' transfer claims that fit exactly are approved without an accountant (issue 19)."""
    from payments.agencies import agency_by_code
    from payments.usecases.claims import set_auto_approval
    from settings.db import session_scope

    settings_or_fail()
    with session_scope() as session:
        set_auto_approval(session, agency_by_code(session, agency).id, days or None)
    state = f"on, credits up to {days} days old" if days else "off"
    typer.echo(f"automatic approval of transfer claims for agency {agency}: {state}")


@keys_app.command("dev-init")
def keys_dev_init(
    agency: Annotated[str, typer.Option(help="Agency code")],
    force: Annotated[bool, typer.Option(help="Replace an existing key")] = False,
) -> None:
    """Create a development CA and an organisation certificate (UID=MST:<tax code>).

    The certificate is clearly marked NOT LEGALLY VALID; production refuses it.
    """
    from api.keysetup import dev_init

    settings = settings_or_fail()
    if settings.profile is Profile.PRODUCTION:
        fail("development keys are refused in the production profile")
    path, subject = dev_init(settings, agency, force=force)
    typer.echo(f"development certificate for {subject} written to {path} (NOT legally valid)")


@catalog_app.command("import")
def catalog_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    agency: Annotated[str, typer.Option(help="Agency code")],
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", help="YYYY-MM-DD; default today")
    ] = None,
) -> None:
    """Import procedures and fee items from CSV; a file with any bad row is rejected whole."""
    from payments.agencies import agency_by_code
    from payments.catalog import import_catalog
    from settings.clock import local_today
    from settings.db import session_scope

    settings_or_fail()
    with session_scope() as session:
        target = agency_by_code(session, agency)
        # Default: the agency's own today, not the machine's (UTC is 7 h behind Vietnam).
        day = (
            date.fromisoformat(effective_from) if effective_from else local_today(target.time_zone)
        )
        result = import_catalog(session, target, file.read_bytes(), effective_from=day)
    typer.echo(
        f"procedures: {result.procedures_created} new, {result.procedures_updated} updated; "
        f"fees: {result.fees_created} new, {result.fees_repriced} repriced, "
        f"{result.fees_unchanged} unchanged"
    )


@client_app.command("add")
def client_add(
    agency: Annotated[str, typer.Option(help="Agency code")],
    name: Annotated[str, typer.Option(help="The one-stop system's name")],
    callback_url: Annotated[str | None, typer.Option("--callback-url")] = None,
) -> None:
    """Create a one-stop API client; the API key is printed alone on the last line."""
    from payments.agencies import agency_by_code
    from payments.credentials import add_client
    from settings.db import session_scope

    settings = settings_or_fail()
    with session_scope() as session:
        issued = add_client(
            session,
            agency_by_code(session, agency),
            name,
            callback_url,
            allow_loopback=settings.profile is Profile.EMBEDDED,
        )
    typer.echo(f"client {issued.client.id} created for agency {agency}")
    typer.echo(f"callback signing secret (shown once): {issued.callback_secret}")
    typer.echo("API key (shown once, last line):")
    typer.echo(issued.api_key)


@feed_app.command("add")
def bank_feed_add(
    agency: Annotated[str, typer.Option(help="Agency code")],
    provider: Annotated[str, typer.Option(help="sepay or casso")],
) -> None:
    """Create a bank-feed credential; the key is printed alone on the last line."""
    from payments.agencies import agency_by_code
    from payments.credentials import add_bank_feed
    from settings.db import session_scope

    settings_or_fail()
    with session_scope() as session:
        cred, key = add_bank_feed(session, agency_by_code(session, agency), provider)
    typer.echo(f"{provider} credential {cred.id} created for agency {agency}; key (shown once):")
    typer.echo(key)


onestop_app = typer.Typer(
    no_args_is_help=True, help="One-stop systems speaking PP-DVCQG (national payment platform)"
)
app.add_typer(onestop_app, name="onestop-partner")


@onestop_app.command("add")
def onestop_partner_add(
    agency: Annotated[str, typer.Option(help="Agency code")],
    code: Annotated[str, typer.Option(help="Partner code (MaDoiTac) given to the system")],
    confirm_url: Annotated[str, typer.Option("--confirm-url", help="Their CONFIRM endpoint")],
    reply: Annotated[str, typer.Option(help="Reply dialect: maloi or error_code")] = "maloi",
    bill: Annotated[str, typer.Option(help="GET_BILL answer: url or pdf")] = "url",
    name: Annotated[str, typer.Option(help="A name for the admin page")] = "",
    allow_ip: Annotated[
        list[str] | None, typer.Option("--allow-ip", help="Source address or CIDR (repeat)")
    ] = None,
    skew: Annotated[int, typer.Option(help="Accepted ThoiGianGD skew, seconds")] = 300,
    fee_map: Annotated[str, typer.Option("--fee-map", help="THEIRS=OURS,… fee codes")] = "",
    procedure_map: Annotated[
        str, typer.Option("--procedure-map", help="THEIRS=OURS,… procedure codes")
    ] = "",
) -> None:
    """Register a PP-DVCQG partner; its secret key is printed alone on the last line."""
    from payments.agencies import agency_by_code
    from payments.onestop_partners import PartnerInput, add_partner, parse_ip_list, parse_map
    from settings.db import session_scope

    settings = settings_or_fail()
    with session_scope() as session:
        issued = add_partner(
            session,
            agency_by_code(session, agency),
            PartnerInput(
                code=code,
                confirm_url=confirm_url,
                name=name,
                reply_dialect=reply,
                bill_dialect=bill,
                allowed_ips=parse_ip_list(",".join(allow_ip or [])),
                clock_skew_seconds=skew,
                fee_map=parse_map(fee_map, "fee map"),
                procedure_map=parse_map(procedure_map, "procedure map"),
            ),
            allow_loopback=settings.profile is Profile.EMBEDDED,
        )
        partner_id = issued.partner.id
    typer.echo(f"one-stop partner {code} ({partner_id}) created for agency {agency}")
    typer.echo("secret key for MaXacThuc (shown once, last line):")
    typer.echo(issued.secret)


bank_app = typer.Typer(no_args_is_help=True, help="Bank statements")
app.add_typer(bank_app, name="bank")


@bank_app.command("import")
def bank_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    agency: Annotated[str, typer.Option(help="Agency code")],
    file_format: Annotated[str, typer.Option("--format", help="camt053, mt940, csv or xlsx")],
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="column-mapping profile for csv/xlsx: a built-in one (auto, motcua, "
            "vietcombank, vietinbank, bidv, agribank, techcombank, mb, acb, vpbank: bank "
            "layouts unconfirmed, check with your file) or one the agency saved on the admin "
            "page; without one the header row and columns are found automatically",
        ),
    ] = None,
) -> None:
    """Import a bank statement (idempotent: importing the same file again adds nothing)."""
    from payments.agencies import agency_by_code
    from payments.statement_import import import_statement
    from payments.usecases.follow_ups import IssueReceipt, run_after_commit
    from settings.db import session_scope

    settings_or_fail()
    with session_scope() as session:
        report = import_statement(
            session,
            agency_by_code(session, agency),
            file.read_bytes(),
            file_format,
            profile=profile,
        )
    if report.already_imported:
        typer.echo("this statement was imported before: nothing added")
        return
    run_after_commit(IssueReceipt(order_id) for order_id in report.orders_to_issue)
    typer.echo(
        f"{report.lines} lines in {report.statements} statement(s): {report.new_events} new, "
        f"{report.credits_matched} paid an order, {report.exceptions} to the exceptions queue"
    )
    typer.echo(
        f"lines read: {report.lines}; credits new: {report.credits_new}, already known: "
        f"{report.credits_known}; matched: {report.credits_matched}; to the exceptions queue: "
        f"{report.exceptions}; debits ignored: {report.debits_ignored}; "
        f"warnings: {len(report.warnings)}"
    )
    if report.columns:
        typer.echo("columns used: " + "; ".join(report.columns))
    for check in report.balance_checks:
        typer.echo(f"balance check: {check}")
    if not report.balance_checks:
        typer.echo("balance check: the file states no opening and closing balance")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")


sandbox_app = typer.Typer(no_args_is_help=True, help="Sandboxes for parties that cannot run here")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("tax-authority")
def sandbox_tax_authority(
    port: Annotated[int, typer.Option()] = 8099,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    trusted_ca: Annotated[
        Path | None, typer.Option("--trusted-ca", help="CA the signer must chain to")
    ] = None,
) -> None:
    """A stand-in tax authority speaking TDiep (refused in the production profile)."""
    from einvoice.tax_authority.sandbox import main as run_sandbox

    settings = settings_or_fail()
    if not settings.sandboxes_on:
        fail("sandboxes are off in this profile")
    folder = data_dir or settings.data_dir / "tax-sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    run_sandbox(port, folder, trusted_ca_path=trusted_ca, receiver_code=settings.tax_receiver_code)


tax_app = typer.Typer(no_args_is_help=True, help="The tax authority (TDiep messages)")
app.add_typer(tax_app, name="tax")


@tax_app.command("register")
def tax_register(
    agency: Annotated[str, typer.Option(help="Agency code")],
    tax_authority_name: Annotated[
        str, typer.Option("--tax-authority-name", help="e.g. Chi cục Thuế khu vực …")
    ],
) -> None:
    """Send the registration 01/ĐKTĐ-CTĐT (receipt types, data route, certificate)."""
    from payments.agencies import agency_by_code
    from reconciliation.notices import register_agency
    from reconciliation.service import tax_client
    from settings.db import session_scope
    from signing.keys import load_key_source

    settings = settings_or_fail()
    client = tax_client(settings)
    if client is None:
        fail("no tax-authority endpoint configured (MOTCUA_TAX_AUTHORITY_URL)")
    with session_scope() as session:
        row = agency_by_code(session, agency)
        if not row.signing_key_ref:
            fail(f"agency {agency} has no signing key")
        ack = register_agency(
            row,
            load_key_source(row.signing_key_ref),
            settings,
            client,
            tax_authority_name=tax_authority_name,
            templates=(row.receipt_template,),
        )
    typer.echo(f"registration {ack.message_id}: {ack.outcome.value}")
    if not ack.succeeded:
        raise typer.Exit(1)


@tax_app.command("send-notices")
def tax_send_notices() -> None:
    """Send queued 04/SS-CTĐT error notices (the scheduler does this every few minutes)."""
    from reconciliation.notices import send_error_notices
    from reconciliation.service import tax_client
    from settings.db import session_factory

    settings = settings_or_fail()
    client = tax_client(settings)
    if client is None:
        fail("no tax-authority endpoint configured (MOTCUA_TAX_AUTHORITY_URL)")
    typer.echo(str(send_error_notices(session_factory(), settings, client)))


@app.command()
def close(
    agency: Annotated[str, typer.Option(help="Agency code")],
    day: Annotated[
        str, typer.Option("--date", help="Business day YYYY-MM-DD (agency's time zone)")
    ],
    actor: Annotated[str, typer.Option(help="Who runs the close")] = "motcua close (CLI)",
) -> None:
    """Run the daily close for a business day; exit 1 when breaks remain."""
    from reconciliation.service import close_day
    from settings.db import session_scope

    settings = settings_or_fail()
    try:
        business_day = date.fromisoformat(day)
    except ValueError:
        fail(f"--date must be YYYY-MM-DD, got {day!r}")
    with session_scope() as session:
        result = close_day(session, settings, agency, business_day, actor=actor)
        typer.echo(result.summary_text())
        clean = not result.breaks
    if not clean:
        raise typer.Exit(1)


staff_app = typer.Typer(no_args_is_help=True, help="Staff accounts (clerk, accountant, admin)")
app.add_typer(staff_app, name="staff")


@staff_app.command("add")
def staff_add(
    agency: Annotated[str, typer.Option(help="Agency code")],
    username: Annotated[str, typer.Option()],
    display_name: Annotated[str, typer.Option("--display-name")],
    roles: Annotated[str, typer.Option(help="Comma-separated: clerk, accountant, admin")],
) -> None:
    """Create a staff account; the password is read from MOTCUA_NEW_STAFF_PASSWORD or prompted."""
    from api.staff import create_staff
    from payments.agencies import agency_by_code
    from settings.db import session_scope

    settings_or_fail()
    password = os.environ.get("MOTCUA_NEW_STAFF_PASSWORD") or typer.prompt(
        "Mật khẩu / Password", hide_input=True, confirmation_prompt=True
    )
    with session_scope() as session:
        row = agency_by_code(session, agency)
        staff = create_staff(
            session,
            row.id,
            username,
            display_name,
            password,
            [r.strip() for r in roles.split(",") if r.strip()],
        )
        typer.echo(f"staff {staff.username} ({staff.roles}) created for agency {agency}")


@app.command()
def demo() -> None:
    """Seed a sample agency, catalogue, client and bank-feed key (embedded profile; re-runnable)."""
    from api.demo import seed

    settings = settings_or_fail()
    if settings.profile is Profile.PRODUCTION:
        fail("demo data is refused in the production profile")
    upgrade_db(settings)
    typer.echo(seed(settings))


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    worker: Annotated[
        bool | None, typer.Option(help="Run worker+scheduler beside the web app (embedded default)")
    ] = None,
) -> None:
    """Run the web app; in the embedded profile also the background worker and scheduler."""
    import uvicorn

    settings = settings_or_fail()
    with_worker = settings.run_worker_in_serve if worker is None else worker
    if settings.profile is Profile.PRODUCTION:
        with_worker = bool(worker)
    else:
        upgrade_db(settings)
    children: list[subprocess.Popen[bytes]] = []
    if with_worker and not settings.task_eager:
        children.append(_start_worker(settings, beat=True))
    if (
        settings.profile is Profile.EMBEDDED
        and settings.sandboxes_on
        and not settings.tax_authority_url
    ):
        children.append(_start_tax_sandbox(settings))
    try:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def _start_tax_sandbox(settings: Settings) -> subprocess.Popen[bytes]:
    """Embedded: the tax-authority sandbox runs beside the app, as its own process."""
    motcua = str(Path(sys.executable).with_name("motcua"))
    argv = [motcua, "sandbox", "tax-authority", "--port", str(settings.tax_sandbox_port)]
    return subprocess.Popen(argv, env=os.environ.copy())  # noqa: S603 - our own entry point


CELERY_APP = "api.composition:celery_app"
"""Workers and beat start on the composition root, which registers every task module, the beat
schedule and the audit sources on the one app; ``settings.worker`` alone knows none of them."""


def _celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, *args]


def _start_worker(settings: Settings, *, beat: bool) -> subprocess.Popen[bytes]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = _celery_argv(
        "worker", "--pool=solo", "--loglevel=INFO", "-n", f"embedded-{os.getpid()}@%h"
    )
    if beat:
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    return subprocess.Popen(argv, env=os.environ.copy())  # noqa: S603 - our own interpreter


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option()] = 2,
) -> None:
    """Celery worker (production profile: Redis broker)."""
    settings_or_fail()
    argv = _celery_argv("worker", f"--concurrency={concurrency}", "--loglevel=INFO")
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed arguments


@app.command()
def scheduler() -> None:
    """Celery beat: periodic sweeps (and the daily close, issue 5)."""
    settings = settings_or_fail()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.execv(  # noqa: S606
        sys.executable,
        _celery_argv(
            "beat", "--loglevel=INFO", "--schedule", str(settings.data_dir / "celerybeat-schedule")
        ),
    )


audit_app = typer.Typer(no_args_is_help=True, help="Tamper-evident audit trail (hash chain)")
app.add_typer(audit_app, name="audit")


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal the audit records written since the last seal; prints the chain head."""
    import api.composition  # noqa: F401 - registers the audit sources
    from settings.audit_chain import seal
    from settings.db import session_scope

    settings_or_fail()
    total = 0
    for _ in range(10_000):  # bounded: 5 000 records a batch
        with session_scope() as session:
            report = seal(session)
        total += report.total
        if report.total == 0:
            break
    typer.echo(f"sealed {total} record(s); chain head #{report.head_seq} {report.head_hash}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the whole chain; exit 1 naming the first broken record or seal."""
    import api.composition  # noqa: F401 - registers the audit sources
    from settings.audit_chain import verify
    from settings.db import session_scope

    settings_or_fail()
    with session_scope() as session:
        report = verify(session)
    if not report.ok:
        fail(report.text(), code=1)
    typer.echo(report.text())


@app.command("backup")
def backup_command(
    out: Annotated[Path, typer.Option("--out", help="Archive to write (.tar.gz)")],
) -> None:
    """Back up the database and the signing keys into one archive with checksums."""
    import api.composition  # noqa: F401 - every table and where the key references live
    from settings.backup import backup

    settings = settings_or_fail()
    typer.echo(backup(settings, out).text())


@app.command("restore")
def restore_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    force: Annotated[
        bool, typer.Option(help="Replace a database or keys folder that already holds data")
    ] = False,
) -> None:
    """Restore an archive from `motcua backup` into an empty database and data folder."""
    import api.composition  # noqa: F401 - every table and where the key references live
    from settings.backup import restore

    settings = settings_or_fail()
    typer.echo(restore(settings, file, force=force).text())


evidence_app = typer.Typer(no_args_is_help=True, help="Signed evidence bundles for inspectors")
app.add_typer(evidence_app, name="evidence")


def _write_evidence(out: Path, build: object) -> None:
    from reconciliation.evidence import EvidenceBundle

    assert isinstance(build, EvidenceBundle)
    out.write_bytes(build.body)
    typer.echo(f"{out}: {len(build.members)} members, manifest signed ({len(build.body)} bytes)")


@evidence_app.command("receipt")
def evidence_receipt(
    receipt_id: Annotated[str, typer.Argument(help="Receipt id")],
    out: Annotated[Path, typer.Option("--out", help="ZIP file to write")],
) -> None:
    """The signed evidence bundle of one receipt (bank lines, order, XML, PDF, tax, closes,
    audit)."""
    import api.composition  # noqa: F401 - every table and the audit sources
    from reconciliation.evidence import receipt_evidence
    from settings.db import session_scope

    settings = settings_or_fail()
    with session_scope() as session:
        _write_evidence(out, receipt_evidence(session, settings, receipt_id))


@evidence_app.command("day")
def evidence_day(
    agency: Annotated[str, typer.Option(help="Agency code")],
    day: Annotated[str, typer.Option("--date", help="Business day YYYY-MM-DD")],
    out: Annotated[Path, typer.Option("--out", help="ZIP file to write")],
) -> None:
    """The signed evidence bundle of one business day of an agency."""
    import api.composition  # noqa: F401 - every table and the audit sources
    from reconciliation.evidence import day_evidence
    from settings.db import session_scope

    settings = settings_or_fail()
    try:
        business_day = date.fromisoformat(day)
    except ValueError:
        fail(f"--date must be YYYY-MM-DD, got {day!r}")
    with session_scope() as session:
        _write_evidence(out, day_evidence(session, settings, agency, business_day))


@evidence_app.command("verify")
def evidence_verify(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    trusted_ca: Annotated[
        Path | None, typer.Option("--trusted-ca", help="PEM CA the signer must chain to")
    ] = None,
) -> None:
    """Exit 0 when every member and the signed manifest are intact; 1 naming the first that is
    not."""
    from cryptography import x509

    from reconciliation.evidence import verify_evidence

    ca = x509.load_pem_x509_certificate(trusted_ca.read_bytes()) if trusted_ca else None
    check = verify_evidence(file.read_bytes(), trusted_ca=ca)
    if not check.ok:
        fail(check.text(), code=1)
    typer.echo(check.text())


def main() -> None:
    try:
        app()
    except ProblemError as exc:
        typer.echo(f"motcua: {exc.code}: {exc.detail}", err=True)
        sys.exit(1)
    except SettingsError as exc:
        typer.echo(f"motcua: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
