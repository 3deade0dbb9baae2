"""Statement import: the same five transactions in camt.053, MT940 and CSV, and hostile files."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from infra.clock import ZONE, bank_time, local
from lxml import etree

from payments import statements as st
from payments.casso import normalise_casso
from payments.errors import InvalidInput
from payments.memo import find_references
from payments.statements import (
    Statement,
    StatementLine,
    parse_camt053,
    parse_csv,
    parse_mt940,
    parse_statement_file,
    statement_fingerprint,
)

SAMPLES = Path(__file__).parent / "samples"
# Deliberate: the day of the bank's published samples (samples/README.md). This file only
# parses them (no database, no clock is consulted), so every date below derives from DAY.
DAY = date(2026, 11, 20)
ISO = DAY.isoformat()  # YYYY-MM-DD, as camt.053 and the CSV write it
YYMMDD = DAY.strftime("%y%m%d")  # as MT940 writes it
NEXT = DAY + timedelta(days=1)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


CAMT = sample("camt053_vietinbank.xml")
MT940 = sample("mt940_vietinbank.sta")
CSV = sample("statement_vietinbank.csv")


def at(hh: int, mm: int, ss: int) -> datetime:
    return local(DAY, hh, mm, ss)


EXPECTED = [
    StatementLine(
        "976T2611200417",
        at(8, 15, 2),
        DAY,
        6000,
        True,
        "MBVCB.3278123.MC7KD4WQ2RXHG.chuyen khoan nop phi chung thuc ban sao",
    ),
    StatementLine(
        "976T2611200932",
        at(9, 2, 47),
        DAY,
        30000,
        True,
        "IBFT MCK7H3Q9XAB4J TRAN THI BICH NGOC nop le phi ho tich",
    ),
    StatementLine(
        "976T2611201388",
        at(10, 41, 9),
        DAY,
        50000,
        True,
        "CT DEN:024012345678 TRACE427638MC4PX9YTR5W2P",
    ),
    StatementLine(
        "976T2611202051",
        at(14, 5, 0),
        DAY,
        150000,
        False,
        "NOP TIEN PHI, LE PHI VAO TK TAM GIU KBNN NGAY 19/11/2026",
    ),
    StatementLine(
        "FT26324918273645",
        at(16, 20, 33),
        DAY,
        100000,
        True,
        "NGUYEN VAN AN chuyen tien Trace 881204",
    ),
]


def only(statements: list[Statement]) -> Statement:
    assert len(statements) == 1
    return statements[0]


def malformed(call: Any, *args: Any, code: str = "statement_malformed") -> str:
    with pytest.raises(InvalidInput) as exc:
        call(*args)
    assert exc.value.code == code, exc.value.detail
    return str(exc.value.detail)


# --- the same five transactions in three formats ------------------------------------------


def test_camt053_sample() -> None:
    statement = only(parse_camt053(CAMT, ZONE))
    assert statement.account_number == "113000012345"
    assert statement.currency == "VND"
    assert (statement.opening_date, statement.closing_date) == (DAY, DAY)
    assert (statement.opening_balance, statement.closing_balance) == (12_500_000, 12_536_000)
    assert statement.statement_id == f"113000012345-{DAY:%Y%m%d}"
    assert statement.balances_consistent is True
    assert statement.lines == EXPECTED
    assert all(line.booked_at.tzinfo is ZONE for line in statement.lines)
    assert statement.lines[0].raw["debtor"] == "NGUYEN VAN AN"
    assert statement.lines[3].raw["creditor"] == "KHO BAC NHA NUOC HUYEN AN BINH"


def test_csv_sample_is_identical_to_camt053() -> None:
    statement = only(parse_csv(CSV, ZONE))
    assert statement.account_number == "113000012345"
    assert (statement.opening_date, statement.closing_date) == (DAY, DAY)
    assert statement.opening_balance is None and statement.balances_consistent is None
    assert statement.lines == EXPECTED
    assert statement.lines == only(parse_camt053(CAMT, ZONE)).lines
    assert statement.lines[3].raw["line"] == 5


def test_mt940_sample_is_identical_but_for_the_time_of_day() -> None:
    # MT940 carries booking dates, not times: the one documented difference.
    statement = only(parse_mt940(MT940, ZONE))
    assert statement.account_number == "113000012345"
    assert statement.statement_id == f"976STMT{DAY:%Y%m%d}"
    assert (statement.opening_date, statement.closing_date) == (DAY, DAY)
    assert (statement.opening_balance, statement.closing_balance) == (12_500_000, 12_536_000)
    assert statement.balances_consistent is True
    midnight = local(DAY)
    assert statement.lines == [dataclasses.replace(line, booked_at=midnight) for line in EXPECTED]


def test_three_formats_give_the_same_references_amounts_and_memos() -> None:
    def key(s: Statement) -> list[tuple[str, date, int, bool, str, date]]:
        return [
            (x.bank_reference, x.value_date, x.amount, x.incoming, x.memo, x.booked_at.date())
            for x in s.lines
        ]

    camt, mt, csv_ = (
        only(parse_camt053(CAMT, ZONE)),
        only(parse_mt940(MT940, ZONE)),
        only(parse_csv(CSV, ZONE)),
    )
    assert key(camt) == key(mt) == key(csv_)
    # The memos still name the orders despite the banks' mangling.
    refs = [find_references(line.memo) for line in camt.lines]
    assert refs == [["MC7KD4WQ2RXHG"], ["MCK7H3Q9XAB4J"], ["MC4PX9YTR5W2P"], [], []]


def test_webhook_and_statement_agree_on_the_credit() -> None:
    line = only(parse_camt053(CAMT, ZONE)).lines[1]
    body = {
        "error": 0,
        "data": {
            "id": 218897,
            "reference": line.bank_reference,
            "description": line.memo,
            "amount": line.amount,
            "transactionDateTime": bank_time(line.booked_at),
            "accountNumber": "113000012345",
        },
    }
    credit = normalise_casso(json.dumps(body).encode(), ZONE)
    assert (credit.bank_reference, credit.amount, credit.memo, credit.booked_at) == (
        line.bank_reference,
        line.amount,
        line.memo,
        line.booked_at,
    )


def test_dispatch_by_format_name() -> None:
    assert only(parse_statement_file(CAMT, "camt053", ZONE)).lines == EXPECTED
    assert only(parse_statement_file(CSV, "csv", ZONE)).lines == EXPECTED
    assert len(only(parse_statement_file(MT940, "mt940", ZONE)).lines) == 5
    detail = malformed(parse_statement_file, CAMT, "xlsx", ZONE, code="statement_format_unknown")
    assert "camt053" in detail


def test_fingerprint() -> None:
    assert statement_fingerprint(CAMT) == statement_fingerprint(bytes(CAMT))
    assert re.fullmatch(r"[0-9a-f]{64}", statement_fingerprint(CAMT))
    assert statement_fingerprint(CAMT) != statement_fingerprint(CAMT + b"\n")
    assert len({statement_fingerprint(x) for x in (CAMT, MT940, CSV)}) == 3


# --- camt.053 variants --------------------------------------------------------------------


def test_camt053_version_08_is_read_by_local_name() -> None:
    v08 = CAMT.replace(b"camt.053.001.02", b"camt.053.001.08").replace(
        b"<Sts>BOOK</Sts>", b"<Sts><Cd>BOOK</Cd></Sts>"
    )
    # .08 nests parties one level deeper.
    v08 = v08.replace(
        b"<Dbtr><Nm>NGUYEN VAN AN</Nm></Dbtr>", b"<Dbtr><Pty><Nm>NGUYEN VAN AN</Nm></Pty></Dbtr>"
    )
    statement = only(parse_camt053(v08, ZONE))
    assert statement.lines == EXPECTED
    assert statement.lines[0].raw["debtor"] == "NGUYEN VAN AN"


def test_camt053_prefixed_and_unqualified_namespaces() -> None:
    prefixed = CAMT.replace(b'xmlns="urn:', b'xmlns:c="urn:')
    prefixed = re.sub(rb"<(/?)([A-Za-z])", rb"<\1c:\2", prefixed)
    assert only(parse_camt053(prefixed, ZONE)).lines == EXPECTED
    bare = CAMT.replace(b' xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"', b"")
    assert only(parse_camt053(bare, ZONE)).lines == EXPECTED


def test_camt053_iban_and_date_only_booking() -> None:
    data = CAMT.replace(
        b"<Othr>\n            <Id>113000012345</Id>\n          </Othr>",
        b"<IBAN>VN0000113000012345</IBAN>",
    ).replace(
        f"<BookgDt><DtTm>{ISO}T08:15:02+07:00</DtTm></BookgDt>".encode(),
        f"<BookgDt><Dt>{ISO}</Dt></BookgDt>".encode(),
    )
    statement = only(parse_camt053(data, ZONE))
    assert statement.account_number == "VN0000113000012345"
    assert statement.lines[0].booked_at == local(DAY)


def test_camt053_pending_entries_are_not_money() -> None:
    data = CAMT.replace(
        b'<NtryRef>5</NtryRef>\n        <Amt Ccy="VND">100000</Amt>\n        <CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>BOOK</Sts>',
        b'<NtryRef>5</NtryRef>\n        <Amt Ccy="VND">100000</Amt>\n        <CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>PDNG</Sts>',
    )
    assert data != CAMT
    assert only(parse_camt053(data, ZONE)).lines == EXPECTED[:4]


BATCH = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>
<Id>S1</Id><Acct><Id><Othr><Id>113000012345</Id></Othr></Id></Acct>
<Ntry><Amt Ccy="VND">%(total)s</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><DtTm>%(day)sT10:00:00</DtTm></BookgDt><AcctSvcrRef>BATCH1</AcctSvcrRef>
<NtryDtls>
<TxDtls><Refs><AcctSvcrRef>B1-1</AcctSvcrRef></Refs><Amt Ccy="VND">6000</Amt>
<RmtInf><Ustrd>MC7KD4WQ2RXHG</Ustrd></RmtInf></TxDtls>
<TxDtls><Refs><EndToEndId>B1-2</EndToEndId></Refs>
<AmtDtls><TxAmt><Amt Ccy="VND">8000</Amt></TxAmt></AmtDtls>
<RmtInf><Ustrd>MCK7H3Q9XAB4J</Ustrd></RmtInf></TxDtls>
</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"""


def test_camt053_batch_entry_is_split_per_transaction() -> None:
    statement = only(parse_camt053(BATCH % {b"total": b"14000", b"day": ISO.encode()}, ZONE))
    assert [(x.bank_reference, x.amount, x.memo) for x in statement.lines] == [
        ("B1-1", 6000, "MC7KD4WQ2RXHG"),
        ("B1-2", 8000, "MCK7H3Q9XAB4J"),
    ]
    # No balances, no period: dated by its entries.
    assert (statement.opening_date, statement.closing_date) == (DAY, DAY)
    detail = malformed(parse_camt053, BATCH % {b"total": b"15000", b"day": ISO.encode()}, ZONE)
    assert "add up to 14000" in detail and "BATCH1" in detail


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        (
            b"<CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>BOOK</Sts>",
            b"<CdtDbtInd>X</CdtDbtInd><Sts>BOOK</Sts>",
            "CdtDbtInd",
        ),
        (b'<Amt Ccy="VND">30000</Amt>', b'<Amt Ccy="VND">3e4</Amt>', "'3e4'"),
        (b'<Amt Ccy="VND">30000</Amt>', b'<Amt Ccy="VND">-30000</Amt>', "'-30000'"),
        (b'<Amt Ccy="VND">30000</Amt>', b'<Amt Ccy="VND">0</Amt>', "positive"),
        (b'<Amt Ccy="VND">30000</Amt>', b"<Amt>30000</Amt>", "Ccy"),
        (
            f"<BookgDt><DtTm>{ISO}T09:02:47</DtTm></BookgDt>".encode(),
            b"<BookgDt><DtTm>yesterday</DtTm></BookgDt>",
            "yesterday",
        ),
        (b"<Id>113000012345</Id>", b"<Nope>1</Nope>", "Acct/Id"),
        (b"<BkToCstmrStmt>", b"<BkToCstmrAcctRpt>", "BkToCstmrStmt"),
        (b"camt.053.001.02", b"camt.054.001.02", "not a camt.053"),
    ],
)
def test_camt053_malformed_entries_are_named(old: bytes, new: bytes, needle: str) -> None:
    data = CAMT.replace(old, new, 1)
    if b"BkToCstmrAcctRpt" in data:
        data = data.replace(b"</BkToCstmrStmt>", b"</BkToCstmrAcctRpt>")
    assert data != CAMT
    assert needle in malformed(parse_camt053, data, ZONE)


def test_camt053_reference_fallbacks_and_entry_without_any_reference() -> None:
    no_svcr = CAMT.replace(b"<AcctSvcrRef>976T2611200932</AcctSvcrRef>", b"")
    assert only(parse_camt053(no_svcr, ZONE)).lines[1].bank_reference == "IBFT2611200902471187"
    data = no_svcr.replace(
        b"<EndToEndId>IBFT2611200902471187</EndToEndId>", b"<EndToEndId>NOTPROVIDED</EndToEndId>"
    )
    # Issue 18 changed this from a refusal of the whole file: the entry keeps its place with a
    # stable fingerprint, and the warning names it (test_camt_references.py goes further).
    statement = only(parse_camt053(data, ZONE))
    assert statement.lines[1].bank_reference.startswith("fp-")
    assert (
        statement.lines[1].bank_reference == only(parse_camt053(data, ZONE)).lines[1].bank_reference
    )
    (warning,) = statement.warnings
    assert "entry 2" in warning and "no bank reference" in warning


# --- hostile camt.053 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["camt053_xxe.xml", "camt053_billion_laughs.xml", "camt053_doctype.xml"]
)
def test_doctype_entities_and_xxe_are_refused_fast(name: str) -> None:
    started = time.monotonic()
    detail = malformed(parse_camt053, sample(name), ZONE)
    assert "DOCTYPE" in detail
    assert "root:" not in detail
    assert time.monotonic() - started < 1


def test_utf16_cannot_smuggle_a_doctype_past_the_scan() -> None:
    data = sample("camt053_xxe.xml").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    for encoded in (data.encode("utf-16"), data.encode("utf-16-le"), data.encode("utf-16-be")):
        assert "UTF-8" in malformed(parse_camt053, encoded, ZONE)


def test_the_parser_itself_expands_nothing() -> None:
    # Second line of defence, should the DOCTYPE scan ever be bypassed: no entity is resolved,
    # no file read, no DTD loaded.
    root = etree.fromstring(sample("camt053_xxe.xml"), st._xml_parser())
    text = etree.tostring(root).decode()
    assert "root:" not in text
    started = time.monotonic()
    try:
        root = etree.fromstring(sample("camt053_billion_laughs.xml"), st._xml_parser())
    except etree.XMLSyntaxError:
        pass  # libxml2 refusing the amplification is fine too
    else:
        assert len(etree.tostring(root)) < 100_000
    assert time.monotonic() - started < 1


def test_camt053_truncated_names_the_line() -> None:
    detail = malformed(parse_camt053, sample("camt053_truncated.xml"), ZONE)
    assert "not well-formed" in detail and re.search(r"line \d+", detail)


def test_camt053_fractional_vnd_names_the_entry() -> None:
    detail = malformed(parse_camt053, sample("camt053_fractional.xml"), ZONE)
    assert "entry 2 (976T2611200932)" in detail
    assert "30000.50" in detail and "fractional" in detail


def test_camt053_wrong_currency() -> None:
    detail = malformed(
        parse_camt053, sample("camt053_wrong_currency.xml"), ZONE, code="statement_currency"
    )
    assert "entry 3" in detail and "USD" in detail
    account_usd = CAMT.replace(b"<Ccy>VND</Ccy>", b"<Ccy>USD</Ccy>")
    assert "USD" in malformed(parse_camt053, account_usd, ZONE, code="statement_currency")
    balance_usd = CAMT.replace(b'<Amt Ccy="VND">12500000</Amt>', b'<Amt Ccy="EUR">12500000</Amt>')
    assert "OPBD" in malformed(parse_camt053, balance_usd, ZONE, code="statement_currency")


@pytest.mark.parametrize("parser", [parse_camt053, parse_mt940, parse_csv])
def test_size_limit_and_empty_files(parser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "empty" in malformed(parser, b"", ZONE)
    assert "empty" in malformed(parser, b"  \n", ZONE)
    big = b"x" * (st.MAX_STATEMENT_BYTES + 1)
    assert "more than" in malformed(parser, big, ZONE)


# --- MT940 --------------------------------------------------------------------------------


def test_mt940_fractional_vnd_names_the_line() -> None:
    detail = malformed(parse_mt940, sample("mt940_fractional.sta"), ZONE)
    assert ":61: line 2 (976T2611200932)" in detail and "30000.50" in detail


def test_mt940_wrong_currency() -> None:
    assert "USD" in malformed(
        parse_mt940, sample("mt940_wrong_currency.sta"), ZONE, code="statement_currency"
    )


def test_mt940_truncated() -> None:
    assert ":62F:" in malformed(parse_mt940, sample("mt940_truncated.sta"), ZONE)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"this is not a statement", ":20:"),
        (MT940.replace(f":61:{YYMMDD}1120C30000,".encode(), b":61:garbage"), "line 8"),
        (MT940.replace(b":25:ICBVVNVX/113000012345\r\n", b""), ":25:"),
        (MT940.replace(f":60F:C{YYMMDD}VND12500000,\r\n".encode(), b""), ":60F:"),
        (MT940.replace(b"NONREF//976T2611200932", b"NONREF"), "no bank reference"),
        (b"\xff\xfe:20:X", "UTF-8"),
    ],
)
def test_mt940_malformed(data: bytes, needle: str) -> None:
    assert needle in malformed(parse_mt940, data, ZONE)


def test_mt940_never_reads_a_path_given_as_content() -> None:
    # The mt940 library reads a str naming an existing file as that file.
    existing = str(SAMPLES / "mt940_vietinbank.sta").encode()
    assert ":20:" in malformed(parse_mt940, existing, ZONE)
    assert ":20:" in malformed(parse_mt940, b"/etc/passwd", ZONE)


def test_mt940_references_marks_and_lf_endings() -> None:
    data = (
        MT940.replace(b"\r\n", b"\n")
        .replace(b"C6000,NTRFNONREF//976T2611200417", b"C6000,NTRFCUSTREF123")
        .replace(b"D150000,NTRFNONREF", b"RC150000,NTRFNONREF")
    )
    statement = only(parse_mt940(data, ZONE))
    assert statement.lines[0].bank_reference == "CUSTREF123"
    assert statement.lines[3].incoming is False and statement.lines[3].amount == 150000
    reversed_debit = MT940.replace(b"D150000,", b"RD150000,")
    assert only(parse_mt940(reversed_debit, ZONE)).lines[3].incoming is True


def test_mt940_bom_and_two_statements() -> None:
    second = (
        f":20:976STMT{NEXT:%Y%m%d}\r\n:25:ICBVVNVX/113000012345\r\n:28C:326/1\r\n"
        f":60F:C{NEXT:%y%m%d}VND12536000,\r\n:62F:C{NEXT:%y%m%d}VND12536000,\r\n-\r\n"
    ).encode()
    statements = parse_mt940(b"\xef\xbb\xbf" + MT940 + second, ZONE)
    assert [len(s.lines) for s in statements] == [5, 0]
    assert statements[1].opening_date == NEXT


# --- CSV ----------------------------------------------------------------------------------


def test_csv_without_bom_and_with_lf_is_the_same() -> None:
    plain = CSV.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    assert only(parse_csv(plain, ZONE)).lines == EXPECTED
    crlf = plain.replace(b"\n", b"\r\n")
    assert only(parse_csv(crlf, ZONE)).lines == EXPECTED


def test_csv_fractional_names_the_line() -> None:
    detail = malformed(parse_csv, sample("statement_fractional.csv"), ZONE)
    assert "line 3" in detail and "30000.50" in detail


def test_csv_wrong_currency_names_the_line() -> None:
    detail = malformed(
        parse_csv, sample("statement_wrong_currency.csv"), ZONE, code="statement_currency"
    )
    assert "line 4" in detail and "USD" in detail


HEADER = "account_number,booked_at,bank_reference,amount,direction,memo\n"


def test_csv_every_bad_line_is_named() -> None:
    data = (
        HEADER
        + f"113000012345,{ISO} 08:15:02,R1,6000,in,ok\n"
        + f"113000012345,{DAY:%d/%m/%Y} 08:15,R2,6000,in,bad date\n"
        + f"113 000,{ISO} 08:15:02,R3,6000,in,bad account\n"
        + f"113000012345,{ISO} 08:15:02,,6000,in,no reference\n"
        + f"113000012345,{ISO} 08:15:02,R5,6.000,in,dot thousands\n"
        + f"113000012345,{ISO} 08:15:02,R6,6000,sideways,bad direction\n"
        + f"113000012345,{ISO} 08:15:02,R7,-6000,in,conflict\n"
        + f"113000012345,{ISO} 08:15:02,R8,0,in,zero\n"
        + f"113000012345,{ISO} 08:15:02,R9,6000,in\n"
        + f"113000012345,{ISO} 08:15:02,R10,abc,in,not a number\n"
    )
    with pytest.raises(InvalidInput) as exc:
        parse_csv(data.encode(), ZONE)
    assert exc.value.code == "statement_malformed"
    errors = exc.value.extra["errors"]
    assert isinstance(errors, list)
    lines = [int(re.match(r"line (\d+)", e).group(1)) for e in errors]  # type: ignore[union-attr]
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "line 2" not in str(exc.value.detail)
    assert "thousands separators" in errors[3]


def test_csv_signed_amounts_direction_and_optional_columns() -> None:
    data = (
        "memo,amount,direction,bank_reference,booked_at,account_number,value_date,currency\n"
        f"chuyen tien,+6000,,R1,{ISO} 08:15:02,113000012345,{NEXT},\n"
        f'"multi\nline memo",-6000,out,R2,{ISO} 09:00:00,113000012345,,VND\n'
        f"other account,7000,IN,R3,{NEXT} 10:00:00,113000099999,,vnd\n"
    )
    statements = parse_csv(data.encode(), ZONE)
    assert [s.account_number for s in statements] == ["113000012345", "113000099999"]
    first, second = statements[0].lines
    assert (first.amount, first.incoming, first.value_date) == (6000, True, NEXT)
    assert (second.amount, second.incoming, second.memo) == (6000, False, "multi\nline memo")
    assert statements[1].lines[0].incoming is True
    assert statements[1].opening_date == NEXT


def test_csv_line_numbers_after_a_multiline_memo() -> None:
    data = (
        HEADER
        + f'113000012345,{ISO} 08:15:02,R1,6000,in,"two\nlines"\n'
        + f"113000012345,{ISO} 08:15:02,R2,6000.5,in,bad\n"
    )
    assert "line 4" in malformed(parse_csv, data.encode(), ZONE)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("account_number,booked_at,amount,direction,memo\n", "missing bank_reference"),
        (HEADER.replace("\n", ",fee\n"), "unknown 'fee'"),
        (HEADER.replace("\n", ",memo\n"), "repeated memo"),
        ('113000012345,"unterminated\n', "line 1"),
    ],
)
def test_csv_bad_header(data: str, needle: str) -> None:
    assert needle in malformed(parse_csv, data.encode(), ZONE)


def test_csv_not_utf8_names_the_line() -> None:
    data = HEADER.encode() + f"113000012345,{ISO} 08:15:02,R1,6000,in,caf".encode() + b"\xe9\n"
    assert "line 2" in malformed(parse_csv, data, ZONE)


def test_csv_header_only_is_no_statement() -> None:
    assert parse_csv(HEADER.encode(), ZONE) == []


def test_camt053_previous_closing_balance_does_not_date_the_statement() -> None:
    data = CAMT.replace(b"<Cd>OPBD</Cd>", b"<Cd>PRCD</Cd>").replace(
        f"<Dt><Dt>{ISO}</Dt></Dt>".encode(),
        f"<Dt><Dt>{DAY - timedelta(days=1)}</Dt></Dt>".encode(),
        1,
    )
    statement = only(parse_camt053(data, ZONE))
    assert statement.opening_balance == 12_500_000
    assert statement.opening_date == DAY  # from FrToDt, not yesterday's PRCD
    assert statement.balances_consistent is True


def test_camt053_statement_without_anything_to_date_it() -> None:
    empty = re.sub(rb"<Ntry>.*</Ntry>", b"", BATCH, flags=re.S)
    assert "no balances, period or entries" in malformed(parse_camt053, empty, ZONE)
