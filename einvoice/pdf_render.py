"""The printable display copy of a receipt: an A5 portrait PDF drawn from the parsed legal XML.

The signed XML is the legal original (domain.md, "Signatures"); this PDF is what a counter prints
and what a payer keeps. It is drawn from a :class:`~einvoice.receipt_xml.ParsedReceipt`, i.e. from
what the XML *says*, so that the copy cannot state anything the legal original does not. The
PAdES signer (``signing``) signs these bytes afterwards and draws its visible stamp in
:data:`SIGNATURE_BOX`.

What is printed (Decree 254/2026 art. 23): the receipt name, template and series symbols, the
number, the collector's name, tax code and address, the payer, every fee or charge with its kind,
quantity × unit price and amount in figures and in words, the total in figures and in words,
payment method and reference, dossier code and procedure, the date of issue, the currency (VND),
a note that the legal original is the signed XML, the verification code and a QR code opening the
verification page. Vietnamese first, English after it in a smaller grey font (item 8).

Decisions:

* **The number is printed as stored** (``1234``, not ``00001234``): the XML's ``SCTu``, the daily
  summary 01/TH-BLĐT and the verification page all write it unpadded, so the payer reads and types
  the very number that the legal original and the tax office hold.
* **The payer's ID number is masked** to its last 4 characters (``********2345``; at most half of
  a short value is shown). A printed or photographed display copy travels further than the signed
  XML, a citizen ID number is personal data (Decree 13/2023/NĐ-CP), and it is not a mandatory item
  of art. 23; the full value stays in the legal original.
* **Amounts in words are the XML's** (``ThTienBChu``; the total's ``STBChu``, ``TgTTTBChu`` in
  receipts of mapping 0.1), which the issuer wrote with
  :func:`~einvoice.amount_words.amount_in_words`; recomputing them here could make an old receipt's
  copy disagree with its legal original if the wording rules ever change.
  :func:`~einvoice.amount_words.amount_in_words` is used only when the XML's words are empty.
* **Figures use "." as the thousands separator** (``1.250.000``), as Vietnamese documents do.
* **The date is the collector's local date** (``NLap``), written "Ngày 20 tháng 11 năm 2026" with
  two-digit day and month as Vietnamese invoices print it, followed by the local time (``GLap``).
* **Payment methods** are printed in Vietnamese with English after them; the codes the payments
  side stores (``transfer``, ``cash``, ``card``, ``exempt``) and the Vietnamese words themselves are
  both understood (:data:`PAYMENT_METHOD_LABELS`); anything else is printed as written.
* **Text is NFC-normalised** before drawing: reportlab does not shape, so a decomposed "ễ" (e +
  combining marks) would print as loose accents; every Vietnamese letter exists precomposed in the
  font.
* **One page normally**; a receipt with many lines continues on further A5 pages (the table
  header repeats, pages are numbered). The QR, the signature box and the legal note are on page 0.
* **Deterministic bytes**: reportlab's ``invariant`` mode fixes the creation date and document ID,
  so the same input gives the same PDF (cacheable, golden-testable) in any process.

Fonts: Vietnamese subsets of DejaVu Sans and DejaVu Sans Bold (DejaVu fonts licence: Bitstream
Vera, Arev, DejaVu changes in the public domain; ``einvoice/fonts/README.md`` and ``LICENSE.txt``)
are shipped in ``einvoice/fonts`` and registered with reportlab once per process; reportlab
embeds in each PDF only the glyphs that PDF uses, so Vietnamese prints and extracts (pdftotext,
copy-paste, screen readers: every subset has a ToUnicode map) correctly anywhere.

Speed (about 10 ms a receipt, 90-100 PDFs/s per process on the 2-vCPU machines of
performance.md): fonts are parsed once per process and pre-subset to 67 KB; all of a page's text
is one text object with font and colour switched only when they change; the QR is one vector
path of run-length rectangles, not reportlab's QR widget. What remains is mostly segno choosing
the QR mask (≈3 ms, kept: the standard's mask choice is what makes a symbol easy to scan), font
subsetting and zlib.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Final

import segno
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from einvoice.amount_words import amount_in_words
from einvoice.document import FeeKind
from einvoice.receipt_xml import RECEIPT_NAME, ParsedLine, ParsedReceipt

__all__ = [
    "FONT_BOLD",
    "FONT_DIR",
    "FONT_LOCK",
    "FONT_REGULAR",
    "PAGE_SIZE",
    "PAYMENT_METHOD_LABELS",
    "QR_BOX",
    "SIGNATURE_BOX",
    "register_fonts",
    "render_receipt_pdf",
]

# --------------------------------------------------------------------------- page geometry

PAGE_SIZE: Final = (419.52755905511816, 595.2755905511812)
"""A5 portrait in PDF points (148 × 210 mm), as ``reportlab.lib.pagesizes.A5``."""

_PAGE_W, _PAGE_H = PAGE_SIZE
_MARGIN: Final = 28.0
"""About 10 mm: inside the unprintable edge of office printers, with room to spare."""
_LEFT: Final = _MARGIN
_RIGHT: Final = _PAGE_W - _MARGIN
_CONTENT_W: Final = _RIGHT - _LEFT

_STAMP_BLUE: Final = (0.05, 0.25, 0.6)
SIGNATURE_BOX: Final = (211.5, 64.0, 391.5, 124.0)
"""``(x1, y1, x2, y2)`` in PDF points on page 0 (origin bottom-left): where the PAdES signer draws
its visible stamp ("Ký bởi: … / Ngày ký: …").

180 × 60 pt (63.5 × 21.2 mm: three lines of a 7.5 pt stamp with room to spare), flush with
the right margin, above the verification caption and the legal note. Only a thin frame is drawn
here (plus ``stamp_lines`` when the caller asks :func:`render_receipt_pdf` to draw the stamp), and
the caption "Đơn vị thu tiền" sits above it, so nothing else of ours is under the stamp. The
same rectangle on every receipt, so a signer can be configured once (pyHanko:
``SigFieldSpec(..., on_page=0, box=SIGNATURE_BOX)``).
"""

QR_BOX: Final = (28.0, 60.0, 104.0, 136.0)
"""``(x1, y1, x2, y2)`` of the QR code on page 0, its 4-module quiet zone included."""

_FOOTER_TOP: Final = 156.0
"""Page 0's body stops here; below are the signature caption and box, the QR and the notes."""

_LEADING: Final = 1.25
"""Line height as a multiple of the largest font size on the line."""

# --------------------------------------------------------------------------- fonts

FONT_DIR: Final = Path(__file__).with_name("fonts")
"""Where the shipped TrueType files are (package data next to this module)."""

FONT_REGULAR: Final = "einvoice-DejaVuSans"
FONT_BOLD: Final = "einvoice-DejaVuSans-Bold"
"""Names registered with reportlab: prefixed so that another part of the process registering
its own "DejaVuSans" cannot swap the font under a receipt being drawn."""

_FONT_FILES: Final = {FONT_REGULAR: "DejaVuSans-vi.ttf", FONT_BOLD: "DejaVuSans-Bold-vi.ttf"}

_fonts_lock = threading.Lock()
_fonts_registered = False

FONT_LOCK: Final = threading.RLock()
"""Hold it while drawing *and saving* any reportlab document that uses :data:`FONT_REGULAR` or
:data:`FONT_BOLD` (``render_receipt_pdf`` does; other users such as report exports must too).

reportlab's registered TrueType fonts are process-wide objects and not thread-safe: each saved
document cuts its font subset by seeking in the one shared font file (``TTFontFile.makeSubset``),
so two documents saved at once by two threads swap glyph data or fail with ``IndexError``
(reproduced by ``test_threads_render_the_same_bytes``). FastAPI runs plain ``def`` endpoints in
a thread pool, so that happens under load. Rendering is pure Python, serialised by the GIL
anyway, so the lock costs no throughput; use processes to scale.
"""


def register_fonts() -> None:
    """Register the embedded fonts with reportlab, once per process (thread-safe, idempotent).

    Parsing a TrueType file costs tens of milliseconds; doing it per document would halve the
    rate. Called by :func:`render_receipt_pdf`; call it at start-up to move that cost out of the
    first request.
    """
    global _fonts_registered  # noqa: PLW0603 - a process-wide, once-only registration
    if _fonts_registered:
        return
    with _fonts_lock:
        if _fonts_registered:
            return
        registered = set(pdfmetrics.getRegisteredFontNames())
        for name, filename in _FONT_FILES.items():
            if name not in registered:
                pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / filename)))
        _fonts_registered = True


# --------------------------------------------------------------------------- text styles

_RGB = tuple[float, float, float]
_BLACK: Final[_RGB] = (0.0, 0.0, 0.0)
_GREY: Final[_RGB] = (0.33, 0.33, 0.33)
_RED: Final[_RGB] = (0.8, 0.0, 0.0)
_RULE_GREY: Final[_RGB] = (0.6, 0.6, 0.6)
_SHADE: Final[_RGB] = (0.92, 0.92, 0.92)


@dataclass(frozen=True, slots=True)
class _Style:
    font: str
    size: float
    color: _RGB = _BLACK


def _vi(size: float, *, bold: bool = False, color: _RGB = _BLACK) -> _Style:
    return _Style(FONT_BOLD if bold else FONT_REGULAR, size, color)


def _en(size: float, *, bold: bool = False) -> _Style:
    """English follows Vietnamese in a smaller, grey font (art. 23 item 8)."""
    return _Style(FONT_BOLD if bold else FONT_REGULAR, size, _GREY)


_Run = tuple[str, _Style]

# --------------------------------------------------------------------------- layout engine


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _width(text: str, style: _Style) -> float:
    return float(pdfmetrics.stringWidth(text, style.font, style.size))


@dataclass(frozen=True, slots=True)
class _Line:
    pieces: tuple[tuple[float, str, _Style], ...]
    """``(x offset, text, style)``: consecutive words of one style merged into one piece."""
    width: float
    size: float
    """Largest font size on the line: sets the line's height."""

    @property
    def height(self) -> float:
        return self.size * _LEADING


_TOKEN = re.compile(r"\n|[^\s]+[^\S\n]*|[^\S\n]+")
"""A forced break, a word with the blanks after it, or blanks alone."""


def _wrap(runs: Sequence[_Run], width: float) -> list[_Line]:
    """Greedy word wrap of styled runs into ``width``; a word longer than a line is cut.

    Small and specific on purpose: platypus would do it too, at several times the cost per page.
    """
    lines: list[_Line] = []
    tokens: list[tuple[str, _Style]] = []
    used = 0.0

    def flush() -> None:
        nonlocal used
        if tokens:
            last_text, last_style = tokens[-1]
            tokens[-1] = (last_text.rstrip(), last_style)
        merged: list[tuple[str, _Style]] = []
        for text, style in tokens:
            if merged and merged[-1][1] == style:
                merged[-1] = (merged[-1][0] + text, style)
            else:
                merged.append((text, style))
        pieces: list[tuple[float, str, _Style]] = []
        x = 0.0
        for text, style in merged:
            pieces.append((x, text, style))
            x += _width(text, style)
        size = max((style.size for _, style in merged), default=0.0)
        lines.append(_Line(tuple(pieces), x, size))
        tokens.clear()
        used = 0.0

    for raw, style in runs:
        for token in _TOKEN.findall(_nfc(raw)):
            if token == "\n":  # noqa: S105 - a line break, not a password
                flush()
                continue
            word = token.rstrip()
            if not word:
                if tokens:  # blanks between runs; dropped at the start of a line
                    tokens.append((token, style))
                    used += _width(token, style)
                continue
            word_width = _width(word, style)
            if tokens and used + word_width > width:
                flush()
            if word_width > width:  # a URL or code longer than the line: cut by characters
                chunk = ""
                for char in word:
                    if chunk and _width(chunk + char, style) > width:
                        tokens.append((chunk, style))
                        flush()
                        chunk = ""
                    chunk += char
                piece = chunk + token[len(word) :]
            else:
                piece = token
            tokens.append((piece, style))
            used += _width(piece, style)
    if tokens:
        flush()
    return lines


def _set_fill(canvas: Any, color: _RGB) -> None:
    canvas.setFillColorRGB(*color)


class _Painter:
    """One page being drawn: graphics go straight to the canvas, text into one text object.

    All of a page's text is one ``BT … ET`` drawn last (over the shading), with font and colour
    set only when they change, instead of a text object, font and colour per string as
    ``drawString`` writes them: a smaller content stream and fewer reportlab calls.
    """

    def __init__(self, canvas: Any) -> None:
        self.canvas = canvas
        self._text = canvas.beginText()
        self._font: tuple[str, float] | None = None
        self._color: _RGB | None = None

    def string(self, x: float, y: float, text: str, style: _Style) -> None:
        if self._font != (style.font, style.size):
            self._text.setFont(style.font, style.size)
            self._font = (style.font, style.size)
        if self._color != style.color:
            self._text.setFillColorRGB(*style.color)
            self._color = style.color
        self._text.setTextOrigin(x, y)
        self._text.textOut(text)

    def finish(self) -> None:
        """Draw the page's text; call once, after all graphics of the page."""
        self.canvas.drawText(self._text)


@dataclass(frozen=True, slots=True)
class _Para:
    """Wrapped text placed at ``x`` within ``width``, aligned left, centre or right."""

    lines: tuple[_Line, ...]
    x: float
    width: float
    align: str = "left"

    @property
    def height(self) -> float:
        return sum(line.height for line in self.lines)

    def draw(self, painter: _Painter, top: float) -> None:
        y = top
        for line in self.lines:
            baseline = y - line.size
            if self.align == "center":
                x0 = self.x + (self.width - line.width) / 2
            elif self.align == "right":
                x0 = self.x + self.width - line.width
            else:
                x0 = self.x
            for dx, text, style in line.pieces:
                painter.string(x0 + dx, baseline, text, style)
            y -= line.height


def _para(runs: Sequence[_Run], x: float, width: float, align: str = "left") -> _Para:
    return _Para(tuple(_wrap(runs, width)), x, width, align)


def _fit_para(runs: Sequence[_Run], x: float, width: float, *, min_scale: float) -> _Para:
    """One line if it fits after shrinking every run by up to ``min_scale``, else wrapped."""
    natural = sum(_width(_nfc(text), style) for text, style in runs)
    scale = max(min_scale, min(1.0, width / natural)) if natural else 1.0
    scaled = [(text, _Style(style.font, style.size * scale, style.color)) for text, style in runs]
    return _para(scaled, x, width)


@dataclass(frozen=True, slots=True)
class _Block:
    """A horizontal band of the body: its height and how to paint it below a given top."""

    height: float
    paint: Callable[[_Painter, float], None]
    space: bool = False
    """Vertical space only: dropped at the top of a page."""
    header: _Block | None = None
    """Painted first when this block starts a continuation page (the table header)."""


def _space(height: float) -> _Block:
    return _Block(height, lambda painter, top: None, space=True)


def _paras_block(paras: Sequence[_Para], *, pad: float = 0.0) -> _Block:
    """Paragraphs side by side (columns) sharing one top; as tall as the tallest."""

    def paint(painter: _Painter, top: float) -> None:
        for para in paras:
            para.draw(painter, top - pad)

    return _Block(max(p.height for p in paras) + 2 * pad, paint)


def _rule(canvas: Any, y: float, x1: float = _LEFT, x2: float = _RIGHT, width: float = 0.5) -> None:
    canvas.setStrokeColorRGB(*_RULE_GREY)
    canvas.setLineWidth(width)
    canvas.line(x1, y, x2, y)


# --------------------------------------------------------------------------- wording

PAYMENT_METHOD_LABELS: Final[dict[str, tuple[str, str]]] = {
    "transfer": ("Chuyển khoản", "Bank transfer"),
    "chuyển khoản": ("Chuyển khoản", "Bank transfer"),
    "cash": ("Tiền mặt", "Cash"),
    "tiền mặt": ("Tiền mặt", "Cash"),
    "card": ("Thẻ", "Card"),
    "thẻ": ("Thẻ", "Card"),
    "exempt": ("Miễn thu", "Exempt, nothing to pay"),
    "miễn thu": ("Miễn thu", "Exempt, nothing to pay"),
}
"""``HTTToan`` value (case-insensitive) → (Vietnamese, English) as printed."""

_KIND_LABELS: Final[dict[FeeKind, tuple[str, str]]] = {
    FeeKind.PHI: ("Phí", "Fee"),
    FeeKind.LE_PHI: ("Lệ phí", "Charge"),
}

_ENGLISH_NAME: Final = "RECEIPT FOR FEES AND CHARGES"

_LEGAL_NOTE_VI: Final = (
    "Bản thể hiện của biên lai điện tử. Bản gốc có giá trị pháp lý là tệp XML biên lai đã được "
    "đơn vị thu ký số; tra cứu bằng mã QR hoặc địa chỉ trên."
)
_LEGAL_NOTE_EN: Final = (
    " (Display copy of an electronic receipt. The legal original is the receipt XML file "
    "digitally signed by the collecting organisation; check it with the QR code or the address "
    "above.)"
)


def _money(amount: int) -> str:
    """Vietnamese grouping: ``1250000`` → ``1.250.000``."""
    return f"{amount:,}".replace(",", ".")


def _mask_id_number(value: str) -> str:
    """All but the last 4 characters as ``*`` (at most half of a short value is shown)."""
    keep = min(4, len(value) // 2)
    return "*" * (len(value) - keep) + value[len(value) - keep :]


def _payment_method(value: str) -> list[_Run]:
    label = PAYMENT_METHOD_LABELS.get(_nfc(value).strip().casefold())
    if label is None:
        return [(value, _vi(8, bold=True))]
    return [(label[0], _vi(8, bold=True)), (f" ({label[1]})", _en(6.5))]


def _field(vi: str, en: str, value: Sequence[_Run] | str, *, size: float = 8) -> list[_Run]:
    """``Nhãn (Label): value`` with the value in bold unless given as runs."""
    runs: list[_Run] = [(vi, _vi(size)), (f" ({en})", _en(size - 1.5)), (": ", _vi(size))]
    if isinstance(value, str):
        runs.append((value, _vi(size, bold=True)))
    else:
        runs.extend(value)
    return runs


def _line_words(line: ParsedLine) -> str:
    return line.amount_in_words or amount_in_words(line.amount)


# --------------------------------------------------------------------------- body


def _header_block(receipt: ParsedReceipt) -> _Block:
    right_w = 118.0
    left_w = _CONTENT_W - right_w - 10
    collector = _para(
        [
            (receipt.collector_name, _vi(9.5, bold=True)),
            ("\n", _vi(8)),
            *_field("Mã số thuế", "Tax code", receipt.tax_code),
            ("\n", _vi(8)),
            *_field("Địa chỉ", "Address", [(receipt.collector_address, _vi(7.5))], size=7.5),
        ],
        _LEFT,
        left_w,
    )
    symbols = _para(
        [
            *_field("Mẫu số", "Template", receipt.template),
            ("\n", _vi(8)),
            *_field("Ký hiệu", "Series", receipt.series),
            ("\n", _vi(8)),
            *_field("Số", "No.", [(str(receipt.number), _vi(11, bold=True, color=_RED))]),
        ],
        _RIGHT - right_w,
        right_w,
    )
    return _paras_block([collector, symbols])


def _title_block(receipt: ParsedReceipt) -> _Block:
    day = receipt.issued_on
    clock = receipt.issued_time.strftime("%H:%M")
    title = _para(
        [
            (RECEIPT_NAME.upper(), _vi(15, bold=True)),
            ("\n", _vi(8)),
            (_ENGLISH_NAME, _en(8.5)),
            ("\n", _vi(8)),
            (f"Ngày {day.day:02d} tháng {day.month:02d} năm {day.year}, lúc {clock}", _vi(9)),
            (f" (Date of issue: {day:%d/%m/%Y} {clock})", _en(7)),
        ],
        _LEFT,
        _CONTENT_W,
        "center",
    )

    def paint(painter: _Painter, top: float) -> None:
        _rule(painter.canvas, top - 2)
        title.draw(painter, top - 8)

    return _Block(title.height + 8, paint)


def _status_block(note: str) -> _Block:
    """A status such as "replaced by …", boxed in red under the title so no one misses it."""
    pad = 5.0
    para = _para([(note, _vi(10, bold=True, color=_RED))], _LEFT + pad, _CONTENT_W - 2 * pad)
    para = _Para(para.lines, para.x, para.width, "center")

    def paint(painter: _Painter, top: float) -> None:
        canvas = painter.canvas
        canvas.setStrokeColorRGB(*_RED)
        canvas.setLineWidth(1.5)
        canvas.rect(_LEFT, top - para.height - 2 * pad, _CONTENT_W, para.height + 2 * pad)
        para.draw(painter, top - pad)

    return _Block(para.height + 2 * pad, paint)


def _payer_blocks(receipt: ParsedReceipt) -> list[_Block]:
    rows: list[list[_Run]] = [_field("Người nộp tiền", "Payer", receipt.payer_name)]
    if receipt.payer_address:
        rows.append(_field("Địa chỉ", "Address", [(receipt.payer_address, _vi(8))]))
    if receipt.payer_id_number:
        masked = _mask_id_number(receipt.payer_id_number)
        rows.append(_field("Số định danh cá nhân", "Personal ID no.", [(masked, _vi(8))]))
    if receipt.dossier_code:
        rows.append(_field("Mã hồ sơ", "Dossier code", receipt.dossier_code))
    if receipt.procedure_code or receipt.procedure_name:
        procedure = " – ".join(p for p in (receipt.procedure_code, receipt.procedure_name) if p)
        rows.append(_field("Thủ tục hành chính", "Procedure", [(procedure, _vi(8))]))
    rows.append(
        _field("Hình thức thanh toán", "Payment method", _payment_method(receipt.payment_method))
    )
    rows.append(
        _field(
            "Mã tham chiếu thanh toán",
            "Payment reference",
            [
                (receipt.payment_reference, _vi(8, bold=True)),
                ("   Đơn vị tiền tệ", _vi(8)),
                (" (Currency)", _en(6.5)),
                (": ", _vi(8)),
                ("VND", _vi(8, bold=True)),
            ],
        )
    )
    if receipt.replaces:
        rows.append(
            [
                ("Biên lai này thay thế biên lai mã ", _vi(8)),
                (receipt.replaces, _vi(8, bold=True)),
                (f" (This receipt replaces receipt {receipt.replaces})", _en(6.5)),
            ]
        )
    return [_paras_block([_para(runs, _LEFT, _CONTENT_W)], pad=0.5) for runs in rows]


# Table columns: STT | fee or charge | quantity × unit price | amount.
_COL_NO_W: Final = 22.0
_COL_QTY_W: Final = 82.0
_COL_AMOUNT_W: Final = 76.0
_COL_NAME_W: Final = _CONTENT_W - _COL_NO_W - _COL_QTY_W - _COL_AMOUNT_W
_X_NAME: Final = _LEFT + _COL_NO_W
_X_QTY: Final = _X_NAME + _COL_NAME_W
_X_AMOUNT: Final = _X_QTY + _COL_QTY_W
_CELL_PAD: Final = 3.0


def _cell(runs: Sequence[_Run], x: float, width: float, align: str = "left") -> _Para:
    return _para(runs, x + _CELL_PAD, width - 2 * _CELL_PAD, align)


def _table_header_block() -> _Block:
    cells = [
        _cell(
            [("STT", _vi(7, bold=True)), ("\n", _vi(7)), ("No.", _en(6))],
            _LEFT,
            _COL_NO_W,
            "center",
        ),
        _cell(
            [("Tên khoản thu", _vi(7, bold=True)), ("\n", _vi(7)), ("Fee or charge", _en(6))],
            _X_NAME,
            _COL_NAME_W,
        ),
        _cell(
            [
                ("Số lượng × Đơn giá", _vi(7, bold=True)),
                ("\n", _vi(7)),
                ("Qty × Unit price", _en(6)),
            ],
            _X_QTY,
            _COL_QTY_W,
            "right",
        ),
        _cell(
            [("Thành tiền (VND)", _vi(7, bold=True)), ("\n", _vi(7)), ("Amount (VND)", _en(6))],
            _X_AMOUNT,
            _COL_AMOUNT_W,
            "right",
        ),
    ]
    height = max(c.height for c in cells) + 2 * _CELL_PAD

    def paint(painter: _Painter, top: float) -> None:
        _set_fill(painter.canvas, _SHADE)
        painter.canvas.rect(_LEFT, top - height, _CONTENT_W, height, stroke=0, fill=1)
        for cell in cells:
            cell.draw(painter, top - _CELL_PAD)
        _rule(painter.canvas, top - height, width=0.8)

    return _Block(height, paint)


def _line_block(index: int, line: ParsedLine, header: _Block) -> _Block:
    kind_vi, kind_en = _KIND_LABELS[line.kind]
    name_runs: list[_Run] = [
        (line.name, _vi(8, bold=True)),
        ("\n", _vi(8)),
        (kind_vi, _vi(6.5)),
        (f" ({kind_en})", _en(6)),
        (f" · Mã khoản: {line.fee_code}", _vi(6.5)),
    ]
    if line.exemption:
        name_runs += [
            ("\n", _vi(8)),
            ("Miễn, giảm", _vi(6.5)),
            (" (Exemption)", _en(6)),
            (f": {line.exemption}", _vi(6.5)),
        ]
    unit = f" {line.unit}" if line.unit else ""
    cells = [
        _cell([(str(index), _vi(8))], _LEFT, _COL_NO_W, "center"),
        _cell(name_runs, _X_NAME, _COL_NAME_W),
        _cell(
            [(f"{line.quantity}{unit} × {_money(line.unit_price)}", _vi(8))],
            _X_QTY,
            _COL_QTY_W,
            "right",
        ),
        _cell([(_money(line.amount), _vi(8.5, bold=True))], _X_AMOUNT, _COL_AMOUNT_W, "right"),
    ]
    words = _cell(
        [
            ("Bằng chữ", _vi(7)),
            (" (In words)", _en(6)),
            (": ", _vi(7)),
            (_line_words(line), _vi(7.5)),
        ],
        _X_NAME,
        _COL_NAME_W + _COL_QTY_W + _COL_AMOUNT_W,
    )
    # How the amount was reached (issue 14), under the line: a tiered or capped fee is not
    # quantity × unit price, and the display copy must say what the signed XML says.
    below = [words]
    if line.breakdown:
        below.insert(
            0,
            _cell(
                [
                    ("Cách tính", _vi(7)),
                    (" (How computed)", _en(6)),
                    (": ", _vi(7)),
                    (line.breakdown, _vi(7.5)),
                ],
                _X_NAME,
                _COL_NAME_W + _COL_QTY_W + _COL_AMOUNT_W,
            ),
        )
    cells_h = max(c.height for c in cells) + _CELL_PAD
    height = cells_h + sum(p.height for p in below) + _CELL_PAD

    def paint(painter: _Painter, top: float) -> None:
        for cell in cells:
            cell.draw(painter, top - _CELL_PAD)
        y = top - cells_h
        for para in below:
            para.draw(painter, y)
            y -= para.height
        _rule(painter.canvas, top - height, width=0.4)

    return _Block(height, paint, header=header)


def _total_blocks(receipt: ParsedReceipt) -> list[_Block]:
    label = _cell(
        [("Tổng cộng", _vi(9, bold=True)), (" (Total)", _en(7.5))],
        _X_NAME,
        _COL_NAME_W + _COL_QTY_W,
        "right",
    )
    amount = _cell([(_money(receipt.total), _vi(10, bold=True))], _X_AMOUNT, _COL_AMOUNT_W, "right")
    row_h = max(label.height, amount.height) + 2 * _CELL_PAD

    def paint_row(painter: _Painter, top: float) -> None:
        _set_fill(painter.canvas, _SHADE)
        painter.canvas.rect(_LEFT, top - row_h, _CONTENT_W, row_h, stroke=0, fill=1)
        label.draw(painter, top - _CELL_PAD)
        amount.draw(painter, top - _CELL_PAD)
        _rule(painter.canvas, top - row_h, width=0.8)

    words = receipt.total_in_words or amount_in_words(receipt.total)
    return [
        _Block(row_h, paint_row),
        _space(3),
        _paras_block(
            [
                _para(
                    _field("Tổng số tiền bằng chữ", "Total in words", words, size=8.5),
                    _LEFT,
                    _CONTENT_W,
                )
            ]
        ),
    ]


def _notes_blocks(receipt: ParsedReceipt) -> list[_Block]:
    return [
        _paras_block(
            [_para(_field("Ghi chú", "Note", [(note, _vi(8))]), _LEFT, _CONTENT_W)], pad=1.0
        )
        for note in receipt.notes
        if note.strip()
    ]


def _body_blocks(receipt: ParsedReceipt, status_note: str | None) -> list[_Block]:
    blocks = [_header_block(receipt), _space(4), _title_block(receipt), _space(4)]
    if status_note and status_note.strip():
        blocks += [_status_block(status_note), _space(4)]
    blocks += _payer_blocks(receipt)
    blocks.append(_space(5))
    header = _table_header_block()
    blocks.append(header)
    blocks += [_line_block(i, line, header) for i, line in enumerate(receipt.lines, start=1)]
    blocks += _total_blocks(receipt)
    blocks += _notes_blocks(receipt)
    return blocks


# --------------------------------------------------------------------------- pages


def _continuation_para(receipt: ParsedReceipt) -> _Para:
    return _para(
        [
            (
                f"{RECEIPT_NAME} – Mẫu số {receipt.template}, ký hiệu {receipt.series}, "
                f"số {receipt.number} (tiếp theo)",
                _vi(8, bold=True),
            ),
            (" (continued)", _en(6.5)),
        ],
        _LEFT,
        _CONTENT_W,
    )


def _paginate(
    blocks: Sequence[_Block], continuation_height: float
) -> list[list[tuple[float, _Block]]]:
    """Place blocks top-down: page 0 stops at the footer, later pages below a continuation line."""
    pages: list[list[tuple[float, _Block]]] = [[]]
    top = _PAGE_H - _MARGIN
    bottom = _FOOTER_TOP
    for block in blocks:
        if top - block.height < bottom and pages[-1]:
            if block.header is not None and pages[-1][-1][1] is block.header:
                pages[-1].pop()  # no table header orphaned at the foot of a page
            pages.append([])
            top = _PAGE_H - _MARGIN - continuation_height
            bottom = _MARGIN + 12
            if block.space:
                continue
            if block.header is not None:
                pages[-1].append((top, block.header))
                top -= block.header.height
        pages[-1].append((top, block))
        top -= block.height
    return pages


def _draw_qr(canvas: Any, url: str) -> None:
    """``url`` as a QR code (error level M) in :data:`QR_BOX`: one path of run-length rectangles.

    One ``re`` operator per horizontal run of dark modules, filled once: a few hundred bytes and
    no per-module drawing calls, and no seams between modules since the whole symbol is one fill.
    """
    qr = segno.make(url, error="m", micro=False, boost_error=False)
    matrix: tuple[bytearray, ...] = qr.matrix
    quiet = 4
    x1, y1, x2, _ = QR_BOX
    module = (x2 - x1) / (len(matrix) + 2 * quiet)
    path = canvas.beginPath()
    for row_index, row in enumerate(matrix):
        y = y1 + (len(matrix) + quiet - row_index - 1) * module
        col = 0
        count = len(row)
        while col < count:
            if not row[col]:
                col += 1
                continue
            start = col
            while col < count and row[col]:
                col += 1
            path.rect(x1 + (quiet + start) * module, y, (col - start) * module, module)
    _set_fill(canvas, _BLACK)
    canvas.drawPath(path, stroke=0, fill=1)


def _fit_size(text: str, font: str, size: float, width: float) -> float:
    """``size``, or smaller so that ``text`` fits one line of ``width``: a code must not wrap."""
    natural = float(pdfmetrics.stringWidth(text, font, size))
    return size if natural <= width else size * width / natural


def _draw_footer(
    painter: _Painter,
    receipt: ParsedReceipt,
    verify_url: str,
    signer_name: str | None,
    stamp_lines: Sequence[str] = (),
) -> None:
    """Page 0's fixed bottom: signature caption and box, QR, verification caption, legal note."""
    canvas = painter.canvas
    sx1, sy1, sx2, sy2 = SIGNATURE_BOX
    _rule(canvas, _FOOTER_TOP - 4)

    caption: list[_Run] = [
        ("ĐƠN VỊ THU TIỀN", _vi(8, bold=True)),
        (" (Collecting organisation)", _en(6.5)),
    ]
    if signer_name and signer_name.strip():
        caption += [("\n", _vi(8)), (signer_name, _vi(7.5, bold=True))]
    above = _para(caption, sx1, sx2 - sx1, "center")
    above.draw(painter, sy2 + 3 + above.height)

    canvas.setStrokeColorRGB(*_RULE_GREY)
    canvas.setLineWidth(0.6)
    canvas.rect(sx1, sy1, sx2 - sx1, sy2 - sy1, stroke=1, fill=0)
    if stamp_lines:
        runs: list[_Run] = []
        for i, line in enumerate(stamp_lines):
            if i:
                runs.append(("\n", _vi(7.5)))
            runs.append((line, _vi(7.5, bold=i == 0, color=_STAMP_BLUE)))
        stamp = _para(runs, sx1 + 6, sx2 - sx1 - 12)
        stamp.draw(painter, sy2 - (sy2 - sy1 - stamp.height) / 2)

    _draw_qr(canvas, verify_url)
    _, qy1, qx2, qy2 = QR_BOX
    column_x = qx2 + 2
    column_w = sx1 - column_x - 6
    middle: list[_Run] = []
    if receipt.verify_code:
        code_size = _fit_size(receipt.verify_code, FONT_BOLD, 8.5, column_w)
        middle += [
            ("Mã tra cứu", _vi(7, bold=True)),
            (" (Verification code)", _en(6)),
            ("\n", _vi(7)),
            (receipt.verify_code, _vi(code_size, bold=True)),
            ("\n", _vi(7)),
        ]
    middle += [
        ("Quét mã QR để tra cứu biên lai gốc đã ký số", _vi(6.5)),
        (" (Scan to check the signed original)", _en(6)),
    ]
    text = _para(middle, column_x, column_w)
    text.draw(painter, qy2 - (qy2 - qy1 - text.height) / 2)

    verify = _fit_para(
        [("Tra cứu / Verify: ", _vi(7, bold=True)), (verify_url, _vi(7))],
        _LEFT,
        _CONTENT_W,
        min_scale=0.75,
    )
    verify.draw(painter, qy1 - 1)
    note = _para([(_LEGAL_NOTE_VI, _vi(6.5)), (_LEGAL_NOTE_EN, _en(6))], _LEFT, _CONTENT_W)
    note.draw(painter, qy1 - 2 - verify.height)


def _draw_page_label(painter: _Painter, index: int, count: int) -> None:
    label = _para(
        [(f"Trang {index + 1}/{count}", _vi(6.5)), (f" (Page {index + 1} of {count})", _en(6))],
        _LEFT,
        _CONTENT_W,
        "right",
    )
    label.draw(painter, _PAGE_H - _MARGIN + 14)


def render_receipt_pdf(
    receipt: ParsedReceipt,
    *,
    verify_url: str,
    status_note: str | None = None,
    signer_name: str | None = None,
    stamp_lines: Sequence[str] = (),
) -> bytes:
    """The A5 display copy of ``receipt`` as PDF bytes, ready for the PAdES signer.

    :param receipt: what the legal XML says (:func:`~einvoice.receipt_xml.parse_receipt_xml`).
    :param verify_url: the public verification page the QR code opens and the caption prints.
    :param status_note: printed in red under the title, e.g. "Đã được thay thế bởi biên lai số 12
        / Replaced by receipt no. 12"; a status is not in the signed XML, so the caller decides it.
    :param signer_name: printed above :data:`SIGNATURE_BOX` (the organisation whose certificate
        signs), when known; the stamp inside the box is the signer's.
    :param stamp_lines: drawn inside :data:`SIGNATURE_BOX` ("Ký bởi: … / Ngày ký: …") with the
        embedded font, for a signer that then adds a widget without its own appearance (fast:
        pyHanko need not subset a TrueType font per document). Same signer, same time.
    :returns: deterministic bytes: the same arguments give the same PDF.
    :raises ValueError: ``verify_url`` is empty.
    """
    if not verify_url.strip():
        raise ValueError("verify_url must not be empty: the QR code and caption need it")
    register_fonts()
    continuation = _continuation_para(receipt)
    pages = _paginate(_body_blocks(receipt, status_note), continuation.height + 8)

    with FONT_LOCK:
        return _draw_document(receipt, pages, continuation, verify_url, signer_name, stamp_lines)


def _draw_document(
    receipt: ParsedReceipt,
    pages: Sequence[Sequence[tuple[float, _Block]]],
    continuation: _Para,
    verify_url: str,
    signer_name: str | None,
    stamp_lines: Sequence[str],
) -> bytes:
    """The reportlab part of :func:`render_receipt_pdf`; the caller holds :data:`FONT_LOCK`."""
    buffer = BytesIO()
    # initialFontName: otherwise every page selects Helvetica, an unembedded font reference.
    canvas = Canvas(
        buffer,
        pagesize=PAGE_SIZE,
        invariant=1,
        pageCompression=1,
        initialFontName=FONT_REGULAR,
        initialFontSize=8,
    )
    canvas.setTitle(f"{RECEIPT_NAME} {receipt.template} {receipt.series} số {receipt.number}")
    canvas.setAuthor(receipt.collector_name)
    canvas.setSubject(f"{RECEIPT_NAME} / Receipt for fees and charges")
    canvas.setCreator("motcua-pay einvoice.pdf_render")
    for index, placed in enumerate(pages):
        painter = _Painter(canvas)
        if index:
            top = _PAGE_H - _MARGIN
            continuation.draw(painter, top)
            _rule(canvas, top - continuation.height - 3)
        for top, block in placed:
            block.paint(painter, top)
        if index == 0:
            _draw_footer(painter, receipt, verify_url, signer_name, stamp_lines)
        if len(pages) > 1:
            _draw_page_label(painter, index, len(pages))
        painter.finish()
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
