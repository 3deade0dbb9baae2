"""Finding references in bank memos as banks really deliver them."""

from __future__ import annotations

import re
import time
import unicodedata

import pytest
from stdnum.exceptions import InvalidFormat

from payments.memo import find_references, normalize_memo, strip_diacritics
from payments.reference import ALPHABET, generate, is_valid

R1 = "MC7KD4WQ2RXHG"
R2 = "MCK7H3Q9XAB4J"
R3 = "MC4PX9YTR5W2P"
R_MC = "MCMC3JV8KD7E7"  # a reference whose random part itself starts with "MC"


def test_fixtures_are_valid() -> None:
    assert all(is_valid(r) for r in (R1, R2, R3, R_MC))


MEMOS: list[tuple[str, str, list[str]]] = [
    # Vietcombank internet banking: its own prefix, dots, then the payer's text.
    ("vcb", f"MBVCB.3278123.{R1}.chuyen khoan", [R1]),
    ("vcb-glued", f"MBVCB.3278123.{R1}chuyen khoan nop phi", [R1]),
    # Techcombank: reference first, then the bank's FT transaction number.
    ("tcb", f"{R1} FT24012345678", [R1]),
    ("tcb-glued", f"{R1}FT24012345678", [R1]),
    # MB Bank: bank's trace number appended, sometimes without a space.
    ("mb", f"NGUYEN VAN AN chuyen tien {R1} Trace 427638", [R1]),
    ("mb-trace-glued-before", f"CT DEN:024012345678 TRACE427638{R1}", [R1]),
    ("mb-digits-glued-after", f"{R1}427638", [R1]),
    # The payer typed it in lower case.
    ("lower", f"nop phi chung thuc {R1.lower()}", [R1]),
    # Diacritics around the reference, precomposed (NFC) and decomposed (NFD).
    ("diacritics", f"Nguyễn Văn An nộp phí chứng thực {R1} chuyển khoản", [R1]),
    ("nfd", unicodedata.normalize("NFD", f"Đóng lệ phí hộ tịch {R3} cảm ơn"), [R3]),
    ("dj", f"ĐÓNG PHÍ HỒ SƠ{R3}ĐỢT 1", [R3]),
    # Glued on both sides to the payer's name and memo, no separator at all.
    ("glued-both", f"NGUYENVANAN{R1}chuyen", [R1]),
    ("glued-both-lower", f"nguyenvanan{R1.lower()}chuyentien", [R1]),
    # Two orders paid at once, in memo order; a repeat is reported once.
    ("two", f"Thanh toan {R2} va {R1}", [R2, R1]),
    ("duplicate", f"{R1} {R1.lower()} lan 2 {R1}", [R1]),
    # Near misses: wrong check character, transposed characters, truncated by the bank.
    ("wrong-check", "MBVCB.3278123.MC7KD4WQ2RXHH.chuyen khoan", []),
    ("transposed", "MBVCB.3278123.MC7KD4WQ2RHXG.chuyen khoan", []),
    ("truncated", "MBVCB.3278123.MC7KD4WQ2RX", []),
    # Glued to a word ending in "MC": the first window fails its check, the next one holds.
    ("mc-word", f"THANHTOANMC{R1}", [R1]),
    ("mcdonald", f"MCDONALDS HN {R1}", [R1]),
    ("mc-inside", f"THANHTOANMC{R_MC}X", [R_MC]),
    ("mc-repeated", f"MCMC{R_MC}", [R_MC]),
    # Full-width characters from some phone keyboards.
    ("fullwidth", "ＭＣ７ＫＤ４ＷＱ２ＲＸＨＧ", [R1]),
    # Casso/SePay-style description with the bank's extra text.
    ("casso", f"CUSTOMER {R3}. TU: 0912345678 NGUYEN VAN A. Ma giao dich: FT2401", [R3]),
    # Plain Vietnamese with no reference.
    ("none", "Nguyen Van An chuyen tien nop ho so dat dai MC thang 11", []),
    ("empty", "", []),
]


@pytest.mark.parametrize(
    ("memo", "expected"), [(m, e) for _, m, e in MEMOS], ids=[n for n, _, _ in MEMOS]
)
def test_find_references(memo: str, expected: list[str]) -> None:
    assert find_references(memo) == expected


def test_separators_inserted_inside_are_not_supported() -> None:
    # Documented limit: banks strip separators, they do not insert them.
    assert find_references("MC-7KD4-WQ2R-XHG") == []
    assert find_references("MC 7KD4 WQ2R XHG") == []


def test_generated_references_are_found_in_mangled_memos() -> None:
    for _ in range(300):
        ref = generate()
        memo = f"MBVCB.{time.time_ns() % 10**7}.{ref.lower()}chuyển khoản{ref}"
        assert find_references(memo) == [ref]


def test_other_prefix() -> None:
    ref = generate("HN")
    assert find_references(f"abc{ref.lower()}xyz", prefix="HN") == [ref]
    assert find_references(f"abc{ref}xyz") == []
    with pytest.raises(InvalidFormat):
        find_references(ref, prefix="H0")


def test_lookalike_text_is_rare() -> None:
    # 2,000 runs of Vietnamese words glued after "MC". Vowels I/O/U (not in the
    # alphabet) break most windows; a surviving window passes the check
    # character only 1 time in 29. A lookalike that does pass names no order
    # (29**10 possible references), so matching sends the credit to exceptions.
    words = ["NGUYEN", "VAN", "AN", "CHUYEN", "TIEN", "NOP", "PHI", "LE", "HO", "TICH"]
    words += ["DAT", "DAI", "CHUNG", "THUC", "KHOAN", "DONG", "HUYEN", "XA", "THANH", "TOAN"]
    runs = [f"MC{a}{b}{c}" for a in words for b in words for c in words[:5]]
    memo = "".join(runs)
    windows = len(re.findall(f"(?=(MC[{ALPHABET}]{{11}}))", memo))
    assert windows < len(runs) * 0.05
    hits = find_references(memo)
    assert len(hits) <= 3 * windows / 29 + 1
    assert hits == ["MCTHANHXAANMC"]  # deterministic: the one lookalike in this corpus


def test_normalisation() -> None:
    assert strip_diacritics("Nguyễn Văn Đức, đường Lê Lợi") == "Nguyen Van Duc, duong Le Loi"
    assert normalize_memo("chuyển tiền") == "CHUYEN TIEN"


def test_speed() -> None:
    memo = f"MBVCB.3278123.{R1}.chuyen khoan nop phi ho so NGUYEN VAN AN Trace 427638"
    start = time.perf_counter()
    for _ in range(2000):
        find_references(memo)
    assert time.perf_counter() - start < 2.0
    # Adversarial: every position is a prefix occurrence.
    start = time.perf_counter()
    assert find_references("MC" * 20000 + R1) == [R1]
    assert time.perf_counter() - start < 2.0
