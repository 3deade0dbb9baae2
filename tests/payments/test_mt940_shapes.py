"""MT940 in the shapes banks really send (issue 18): SWIFT FIN block wrappers, a statement split
over messages with intermediate balances, and ``:28C:`` numbers outside SWIFT's ``5n[/5n]``.

Each sample holds the five transactions of ``mt940_vietinbank.sta`` (the bank's published
sample of 2026-11-20, see samples/README.md); only the envelope differs. These tests only parse
(no database, no clock is consulted), so the sample's fixed dates are deliberate: the truth is
"the same lines as the plain file", whatever day the suite runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from infra.clock import ZONE

from payments.errors import InvalidInput
from payments.statements import Statement, parse_mt940

SAMPLES = Path(__file__).parent / "samples"
PLAIN = (SAMPLES / "mt940_vietinbank.sta").read_bytes()


def _parse(data: bytes) -> list[Statement]:
    return parse_mt940(data, ZONE)


def _lines_of(statements: list[Statement]) -> list[tuple[object, ...]]:
    """Everything a line carries that matters downstream, ``raw`` included for the memo text."""
    return [
        (line.bank_reference, line.booked_at, line.amount, line.incoming, line.memo)
        for st in statements
        for line in st.lines
    ]


REFERENCE = _parse(PLAIN)


def test_the_plain_sample_is_the_yardstick() -> None:
    # Guards the comparisons below: five lines, the last memo without any envelope residue.
    assert len(REFERENCE) == 1 and len(REFERENCE[0].lines) == 5
    assert REFERENCE[0].lines[-1].memo == "NGUYEN VAN AN chuyen tien Trace 881204"


def test_swift_wrapped_message_reads_like_the_plain_file() -> None:
    """``{1:}{2:}{3:}{4:`` CRLF ... ``-}{5:{CHK:}}``: the trailer must not end up in the memo."""
    data = (SAMPLES / "mt940_swift_wrapped.sta").read_bytes()
    assert data.startswith(b"{1:F01") and b"-}{5:{CHK:" in data and b"\r\n" in data
    statements = _parse(data)
    assert _lines_of(statements) == _lines_of(REFERENCE)
    assert statements[0].opening_balance == REFERENCE[0].opening_balance
    assert statements[0].closing_balance == REFERENCE[0].closing_balance
    assert statements[0].statement_id == "976STMT20261120"


def test_header_on_the_same_line_as_the_first_tag() -> None:
    """Some exports put ``:20:`` straight after ``{4:``; the statement start is still found."""
    text = PLAIN.decode().rstrip().removesuffix("-").rstrip()
    data = ("{1:F01ICBVVNVXAXXX0000000000}{2:O940ICBVVNVXAXXXN}{4:" + text + "\n-}").encode()
    assert _lines_of(_parse(data)) == _lines_of(REFERENCE)


def test_statement_split_over_two_messages_with_intermediate_balances() -> None:
    """Page 1 ``:60F:`` → ``:62M:``, page 2 ``:60M:`` → ``:62F:``: two statements, each balanced,
    chained (page 2 opens where page 1 closed), together the same five lines."""
    statements = _parse((SAMPLES / "mt940_multipage.sta").read_bytes())
    assert [len(st.lines) for st in statements] == [3, 2]
    assert _lines_of(statements) == _lines_of(REFERENCE)
    first, second = statements
    assert first.opening_balance == REFERENCE[0].opening_balance
    assert first.closing_balance == second.opening_balance == 12_586_000
    assert second.closing_balance == REFERENCE[0].closing_balance
    assert first.balances_consistent is True and second.balances_consistent is True


@pytest.mark.parametrize(
    "number",
    ["STMT20261120/0001", "202611200001", "00325/00001/1", "1", "325/"],
    ids=["alnum-with-sequence", "twelve-digits", "three-parts", "single-digit", "empty-sequence"],
)
def test_unusual_statement_numbers_are_read(number: str) -> None:
    data = PLAIN.replace(b":28C:325/1", f":28C:{number}".encode())
    assert _lines_of(_parse(data)) == _lines_of(REFERENCE)


def test_statement_number_sample_file() -> None:
    data = (SAMPLES / "mt940_statement_number.sta").read_bytes()
    assert b":28C:STMT20261120/0001" in data
    assert _lines_of(_parse(data)) == _lines_of(REFERENCE)


def test_a_header_without_its_end_is_refused_as_truncated() -> None:
    data = (SAMPLES / "mt940_swift_wrapped.sta").read_bytes()
    cut = data[: data.index(b"-}{5:")]
    with pytest.raises(InvalidInput) as caught:
        _parse(cut)
    assert caught.value.code == "statement_malformed"
    assert "truncated" in caught.value.detail


def test_intermediate_balance_missing_is_still_refused() -> None:
    """A page whose closing balance line was lost is a truncated file, :62M: or not."""
    data = (
        (SAMPLES / "mt940_multipage.sta").read_bytes().replace(b":62M:C261120VND12586000,\n", b"")
    )
    with pytest.raises(InvalidInput) as caught:
        _parse(data)
    assert caught.value.code == "statement_malformed"
    assert ":62F: (or :62M:)" in caught.value.detail
