"""The A5 display copy: page size, every mandatory item readable back with its diacritics, the
QR code, the reserved signature box, pagination, determinism.

Text is read back with poppler's ``pdftotext`` and the QR with ``pdftoppm`` + ``zbarimg``, i.e.
the way a person's viewer and a phone see the PDF, not through reportlab.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import threading
import unicodedata
from dataclasses import replace
from datetime import UTC
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from infra.clock import local, today
from pyhanko.pdf_utils.reader import PdfFileReader

from einvoice.document import Collector, FeeKind, Payer, ReceiptDocument, ReceiptLine
from einvoice.pdf_render import PAGE_SIZE, QR_BOX, SIGNATURE_BOX, render_receipt_pdf
from einvoice.receipt_xml import (
    ParsedReceipt,
    build_receipt_xml,
    parse_receipt_xml,
    receipt_xml_bytes,
)

VERIFY_URL = "https://bienlai.hoahai.danang.gov.vn/r/K7PQ2M4XWZ3NB6RA"
ISSUED_ON = today()
"""The day of issue printed on the copy: the suite's today (moved with ``--clock``)."""
STATUS = "Đã được thay thế bởi biên lai số 12 / Replaced by receipt no. 12"

needs_pdftotext = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed"
)
needs_qr_tools = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("zbarimg") is None,
    reason="pdftoppm (poppler-utils) or zbarimg (zbar-tools) is not installed",
)


def _line(index: int) -> ReceiptLine:
    return ReceiptLine(
        fee_code=f"LP-HT-{index:02d}",
        name=f"Lệ phí cấp bản sao trích lục hộ tịch số {index}",
        kind=FeeKind.LE_PHI,
        quantity=1,
        unit_price=8_000,
        amount=8_000,
        unit="bản",
    )


def _document(lines: tuple[ReceiptLine, ...] | None = None) -> ReceiptDocument:
    return ReceiptDocument(
        receipt_id="3c1d6f0e2b7a4c9d8e5f4a3b2c1d0e9f",
        template="EBL01",
        series="26TAB",
        number=1234,
        issued_at=local(ISSUED_ON, 9, 15, 30).astimezone(UTC),  # 09:15:30 in Đà Nẵng
        collector=Collector(
            name="Ủy ban nhân dân Phường Hòa Hải",
            tax_code="0401234567-002",
            address="Số 2 Lê Văn Hiến, Phường Hòa Hải, thành phố Đà Nẵng",
        ),
        payer=Payer(
            name="Nguyễn Văn Ấn",
            address="Tổ 12, Phường Hòa Hải, thành phố Đà Nẵng",
            id_number="048090012345",
        ),
        lines=lines
        or (
            ReceiptLine(
                fee_code="LP-DD-01",
                name="Lệ phí đăng ký biến động đất đai",
                kind=FeeKind.LE_PHI,
                quantity=1,
                unit_price=1_250_000,
                amount=1_250_000,
                unit="hồ sơ",
            ),
            ReceiptLine(
                fee_code="P-CT-02",
                name="Phí chứng thực bản sao từ bản chính",
                kind=FeeKind.PHI,
                quantity=3,
                unit_price=2_000,
                amount=0,
                unit="trang",
                exemption="Miễn cho hộ nghèo (Thông tư 226/2016/TT-BTC)",
            ),
        ),
        payment_method="transfer",
        payment_reference="MC7Q2K9X",
        procedure_code="1.004222",
        procedure_name="Đăng ký biến động quyền sử dụng đất",
        dossier_code="000.00.12.H17-261120-0007",
        verify_code="K7PQ2M4XWZ3NB6RA",
        verify_url=VERIFY_URL,
        notes=("Người nhận kết quả: Đặng Thị Ngọc Bích",),
    )


def _parsed(doc: ReceiptDocument) -> ParsedReceipt:
    """Through the real path: build the legal XML, then read it back as a verifier would."""
    return parse_receipt_xml(receipt_xml_bytes(build_receipt_xml(doc)))


@pytest.fixture(scope="module")
def receipt() -> ParsedReceipt:
    return _parsed(_document())


@pytest.fixture(scope="module")
def pdf(receipt: ParsedReceipt) -> bytes:
    return render_receipt_pdf(receipt, verify_url=VERIFY_URL, status_note=STATUS)


def _pdftotext(pdf: bytes, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _flat(text: str) -> str:
    """Whitespace collapsed: line breaks of wrapped text are not our concern here."""
    return " ".join(text.split())


def _pages(pdf: bytes) -> list[Any]:
    """Page dictionaries, in order (the renderer writes one flat /Pages node)."""
    reader = PdfFileReader(BytesIO(pdf))
    return [kid.get_object() for kid in reader.root["/Pages"]["/Kids"]]


# ----------------------------------------------------------------------------- the file


def test_is_a_pdf_of_one_a5_portrait_page(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-")
    reader = PdfFileReader(BytesIO(pdf))
    assert reader.root["/Pages"]["/Count"] == 1
    media_box = [float(v) for v in _pages(pdf)[0]["/MediaBox"]]
    assert media_box == pytest.approx([0, 0, 419.53, 595.28], abs=0.01)
    assert media_box[2:] == pytest.approx(list(PAGE_SIZE), abs=0.01)


def test_fonts_are_embedded_and_nothing_else_is_referenced(pdf: bytes) -> None:
    """Every font is an embedded TrueType subset; no unembedded base-14 font (Helvetica) sneaks
    in, which would render differently per viewer and break PDF/A later."""
    assert pdf.count(b"/FontFile2") == 2  # regular and bold, each embedded once
    assert b"/Helvetica" not in pdf
    assert re.search(rb"/BaseFont /[A-Z]{6}\+DejaVuSans-Bold", pdf)


@pytest.mark.parametrize("mapping", ["0.1", "0.2"])
def test_the_copy_is_the_same_whichever_mapping_the_receipt_is_in(mapping: str, pdf: bytes) -> None:
    """The PDF is drawn from what the XML states, which is the same in both mappings: a receipt
    issued in 0.1 before its agency's switch prints exactly like its 0.2 twin."""
    receipt = _parsed(replace(_document(), mapping_version=mapping))
    assert receipt.schema_version == mapping
    assert render_receipt_pdf(receipt, verify_url=VERIFY_URL, status_note=STATUS) == pdf


def test_same_input_same_bytes(receipt: ParsedReceipt, pdf: bytes) -> None:
    assert render_receipt_pdf(receipt, verify_url=VERIFY_URL, status_note=STATUS) == pdf
    assert render_receipt_pdf(receipt, verify_url=VERIFY_URL) != pdf


def test_same_bytes_in_another_process(receipt: ParsedReceipt, pdf: bytes, tmp_path: Path) -> None:
    """The cache and golden files rely on bytes that do not depend on the process (hash seed,
    font registration order, dates)."""
    source = tmp_path / "receipt.pickle"
    source.write_bytes(pickle.dumps(receipt))
    out = tmp_path / "out.pdf"
    script = (
        "import pickle, sys; from einvoice.pdf_render import render_receipt_pdf; "
        "r = pickle.loads(open(sys.argv[1], 'rb').read()); "
        f"open(sys.argv[2], 'wb').write(render_receipt_pdf(r, verify_url={VERIFY_URL!r}, "
        f"status_note={STATUS!r}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-c", script, str(source), str(out)], check=True, cwd=root, env=env
    )
    assert out.read_bytes() == pdf


def test_threads_render_the_same_bytes(receipt: ParsedReceipt, pdf: bytes) -> None:
    """API workers render from a thread pool (FastAPI runs ``def`` endpoints in threads): the
    process-wide fonts must not mix two documents' subsets (without FONT_LOCK this fails)."""
    results: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            out = render_receipt_pdf(receipt, verify_url=VERIFY_URL, status_note=STATUS)
            with lock:
                results.append(out)

    threads = [threading.Thread(target=work) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so that a race shows up every run
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(results) == 40 and all(out == pdf for out in results)


def test_empty_verify_url_is_refused(receipt: ParsedReceipt) -> None:
    with pytest.raises(ValueError, match="verify_url"):
        render_receipt_pdf(receipt, verify_url="  ")


# ----------------------------------------------------------------------------- what it says


@needs_pdftotext
def test_every_mandatory_item_reads_back_with_its_diacritics(pdf: bytes, tmp_path: Path) -> None:
    text = _flat(_pdftotext(pdf, tmp_path))
    expected = [
        # 1. receipt name, Vietnamese then English
        "BIÊN LAI THU PHÍ, LỆ PHÍ",
        "RECEIPT FOR FEES AND CHARGES",
        # 2-3. template, series, number (as stored: unpadded)
        "Mẫu số (Template): EBL01",
        "Ký hiệu (Series): 26TAB",
        "Số (No.): 1234",
        # 4. collector
        "Ủy ban nhân dân Phường Hòa Hải",
        "Mã số thuế (Tax code): 0401234567-002",
        "Số 2 Lê Văn Hiến, Phường Hòa Hải, thành phố Đà Nẵng",
        # payer
        "Người nộp tiền (Payer): Nguyễn Văn Ấn",
        "Tổ 12, Phường Hòa Hải, thành phố Đà Nẵng",
        # 5. each fee or charge: name, kind, quantity × unit price, figures, words
        "Lệ phí đăng ký biến động đất đai",
        "Lệ phí (Charge)",
        "1 hồ sơ × 1.250.000",
        "1.250.000",
        "Bằng chữ (In words): Một triệu hai trăm năm mươi nghìn đồng",
        "Phí chứng thực bản sao từ bản chính",
        "Phí (Fee)",
        "3 trang × 2.000",
        "Miễn cho hộ nghèo (Thông tư 226/2016/TT-BTC)",
        "Bằng chữ (In words): Không đồng",
        # total in figures and words
        "Tổng cộng (Total) 1.250.000",
        "Tổng số tiền bằng chữ (Total in words): Một triệu hai trăm năm mươi nghìn đồng",
        # payment, dossier, procedure
        "Hình thức thanh toán (Payment method): Chuyển khoản (Bank transfer)",
        "Mã tham chiếu thanh toán (Payment reference): MC7Q2K9X",
        "Mã hồ sơ (Dossier code): 000.00.12.H17-261120-0007",
        "1.004222 – Đăng ký biến động quyền sử dụng đất",
        # 6. date of issue, the collector's local date and time
        f"Ngày {ISSUED_ON:%d} tháng {ISSUED_ON:%m} năm {ISSUED_ON:%Y}, lúc 09:15",
        f"(Date of issue: {ISSUED_ON:%d/%m/%Y} 09:15)",
        # 9. currency
        "Đơn vị tiền tệ (Currency): VND",
        # notes, status, legal original, verification
        "Ghi chú (Note): Người nhận kết quả: Đặng Thị Ngọc Bích",
        "Đã được thay thế bởi biên lai số 12 / Replaced by receipt no. 12",
        "Bản gốc có giá trị pháp lý là tệp XML biên lai đã được đơn vị thu ký số",
        "The legal original is the receipt XML file digitally signed by the collecting",
        "Mã tra cứu (Verification code) K7PQ2M4XWZ3NB6RA",
        f"Tra cứu / Verify: {VERIFY_URL}",
        "ĐƠN VỊ THU TIỀN (Collecting organisation)",
    ]
    missing = [item for item in expected if item not in text]
    assert not missing, f"not in the PDF text: {missing}\n---\n{text}"


@needs_pdftotext
def test_payer_id_number_is_masked_on_the_display_copy(
    receipt: ParsedReceipt, pdf: bytes, tmp_path: Path
) -> None:
    assert receipt.payer_id_number == "048090012345"  # the legal original keeps it whole
    text = _flat(_pdftotext(pdf, tmp_path))
    assert "Số định danh cá nhân (Personal ID no.): ********2345" in text
    assert "048090012345" not in text


@needs_pdftotext
def test_decomposed_input_prints_as_precomposed_letters(
    receipt: ParsedReceipt, tmp_path: Path
) -> None:
    """Text typed on some systems arrives decomposed (e + combining marks); reportlab does not
    position marks, so the renderer composes first and the letters read back intact."""
    nfd = replace(receipt, payer_name=unicodedata.normalize("NFD", "Đặng Thị Ngọc Bích"))
    assert len(nfd.payer_name) > len("Đặng Thị Ngọc Bích")
    text = _flat(_pdftotext(render_receipt_pdf(nfd, verify_url=VERIFY_URL), tmp_path))
    assert "Người nộp tiền (Payer): Đặng Thị Ngọc Bích" in text


@needs_pdftotext
@pytest.mark.parametrize(
    ("stored", "printed"),
    [
        ("transfer", "Chuyển khoản (Bank transfer)"),
        ("Chuyển khoản", "Chuyển khoản (Bank transfer)"),
        ("cash", "Tiền mặt (Cash)"),
        ("card", "Thẻ (Card)"),
        ("Ví điện tử", "Ví điện tử"),  # unknown: printed as the legal original writes it
    ],
)
def test_payment_method_wording(
    receipt: ParsedReceipt, tmp_path: Path, stored: str, printed: str
) -> None:
    pdf = render_receipt_pdf(replace(receipt, payment_method=stored), verify_url=VERIFY_URL)
    assert f"Hình thức thanh toán (Payment method): {printed}" in _flat(_pdftotext(pdf, tmp_path))


def test_status_note_is_boxed_in_red(receipt: ParsedReceipt, pdf: bytes) -> None:
    red_stroke = b".8 0 0 RG"
    with_note = _pages(pdf)[0]["/Contents"].data
    plain = render_receipt_pdf(receipt, verify_url=VERIFY_URL)
    without = _pages(plain)[0]["/Contents"].data
    assert red_stroke in with_note and red_stroke not in without


# ----------------------------------------------------------------------------- QR and signature


@needs_qr_tools
def test_qr_code_opens_the_verify_url(pdf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
        check=True,
    )
    (image,) = tmp_path.glob("p*.png")
    decoded = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(image)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert decoded == [VERIFY_URL]


def _words_in(pdf: bytes, tmp_path: Path, box: tuple[float, float, float, float]) -> list[str]:
    """Words of page 0 whose bounding box overlaps ``box`` (PDF points, origin bottom-left)."""
    html = _pdftotext(pdf, tmp_path, "-bbox", "-f", "1", "-l", "1")
    x1, y1, x2, y2 = box
    found = []
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<'
    for match in re.finditer(pattern, html):
        left, top, right, bottom = (float(v) for v in match.groups()[:4])
        # pdftotext measures y from the top of the page.
        word_y1, word_y2 = PAGE_SIZE[1] - bottom, PAGE_SIZE[1] - top
        if left < x2 and right > x1 and word_y1 < y2 and word_y2 > y1:
            found.append(match.group(5))
    return found


def test_signature_box_is_bottom_right_inside_the_page() -> None:
    x1, y1, x2, y2 = SIGNATURE_BOX
    width, height = PAGE_SIZE
    assert 0 < x1 < x2 <= width and 0 < y1 < y2 <= height
    assert x1 > width / 2 and y2 < height / 3  # bottom-right
    assert x2 - x1 >= 150 and y2 - y1 >= 50  # room for "Ký bởi: … / Ngày ký: …"
    qx1, qy1, qx2, qy2 = QR_BOX
    assert qx2 <= x1 or qy2 <= y1 or qx1 >= x2 or qy1 >= y2  # the QR is not under the stamp


@needs_pdftotext
def test_nothing_is_printed_in_the_signature_box_or_over_the_qr(
    pdf: bytes, receipt: ParsedReceipt, tmp_path: Path
) -> None:
    assert _words_in(pdf, tmp_path, SIGNATURE_BOX) == []
    assert _words_in(pdf, tmp_path, QR_BOX) == []
    signed_on = f"{ISSUED_ON:%d/%m/%Y}"
    signed_look = render_receipt_pdf(
        receipt,
        verify_url=VERIFY_URL,
        signer_name="ỦY BAN NHÂN DÂN PHƯỜNG HÒA HẢI",
        stamp_lines=("Ký bởi: ỦY BAN NHÂN DÂN PHƯỜNG HÒA HẢI", f"Ngày ký: {signed_on} 09:15:31"),
    )
    inside = " ".join(_words_in(signed_look, tmp_path, SIGNATURE_BOX))
    assert "Ký bởi: ỦY BAN NHÂN DÂN PHƯỜNG HÒA HẢI" in inside
    assert f"Ngày ký: {signed_on} 09:15:31" in inside


# ----------------------------------------------------------------------------- long receipts


@needs_pdftotext
def test_many_lines_continue_on_numbered_a5_pages(tmp_path: Path) -> None:
    lines = tuple(_line(i) for i in range(1, 21))
    receipt = _parsed(_document(lines))
    pdf = render_receipt_pdf(receipt, verify_url=VERIFY_URL)
    pages = _pages(pdf)
    assert len(pages) >= 2
    for page in pages:
        media_box = [float(v) for v in page["/MediaBox"]]
        assert media_box[2:] == pytest.approx(list(PAGE_SIZE), abs=0.01)
    text = _pdftotext(pdf, tmp_path)
    flat = _flat(text)
    count = len(pages)
    assert f"Trang 1/{count} (Page 1 of {count})" in flat
    assert "(tiếp theo) (continued)" in flat
    for i in range(1, 21):  # every line once, none lost at a page break
        assert flat.count(f"Lệ phí cấp bản sao trích lục hộ tịch số {i} ") == 1
    last = text.split("\f")[count - 1]
    assert "Tổng cộng (Total) 160.000" in _flat(last)
    assert "Một trăm sáu mươi nghìn đồng" in _flat(last)
    assert "Số lượng × Đơn giá" in last  # the table header repeats on the continuation page
    first = text.split("\f")[0]
    assert f"Tra cứu / Verify: {VERIFY_URL}" in _flat(first)  # QR and signature stay on page 0
