"""Find transfer references in bank memos (nội dung chuyển khoản) as banks deliver them.

Banks do not pass the memo through untouched. What we see in SePay/Casso
webhooks and statements has been, in any combination:

* stripped of Vietnamese diacritics (``chuyển tiền`` -> ``chuyen tien``; ``đ`` -> ``d``);
* upper-cased, or typed in lower case by the payer;
* wrapped in the bank's own text, often **glued with no separator** to the
  reference: ``MBVCB.3278123.<ref>.chuyen khoan``, ``<ref> FT24012345``,
  ``NGUYENVANAN<ref>CHUYEN``, ``... Trace427638``;
* relayed with separators (spaces, dots, dashes) *removed*, so the reference
  touches the text around it.

So the matcher does not tokenise: it normalises the memo (diacritics off,
upper case) and looks at every window of exactly the reference length that
starts at an occurrence of the prefix, keeping the windows whose check
character validates. The check character (see :mod:`payments.reference`) is
what makes gluing harmless: the text after the window is never part of the
match, and a lookalike run of letters passes only by a 1-in-29 chance.
Such a lookalike names no order (29**10 possible references), so callers
must look every result up and treat an unknown one as "no match" rather
than as an error.

Deliberately **not** supported: separators *inserted inside* a reference
(``MC-7KD4-WQ2R...``). We show and encode the reference without separators,
the mangling we know of strips separators rather than adding them, and
removing all separators from the memo
before matching would manufacture candidates out of unrelated neighbouring
words. Such a credit ends up in the exceptions queue for a person to match.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from payments.reference import (
    ALPHABET,
    DEFAULT_PREFIX,
    RANDOM_LENGTH,
    calc_check_digit,
    check_prefix,
)

__all__ = ["find_references", "normalize_memo", "strip_diacritics"]

# Letters that Unicode does not decompose into base letter + combining mark,
# so NFKD leaves them alone: Vietnamese đ/Đ and its lookalikes.
_UNDECOMPOSABLE = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ɖ": "d", "Ɖ": "D"})


def strip_diacritics(text: str) -> str:
    """Remove diacritics the way banks do: ``Nguyễn Văn Đức`` -> ``Nguyen Van Duc``.

    NFKD splits accented letters into base letter + combining marks, which are
    dropped; compatibility forms such as full-width ``ＭＣ`` become ASCII; ``đ``
    (which has no decomposition) is mapped to ``d``. Case is kept.
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSABLE))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_memo(memo: str) -> str:
    """Bring a memo to the form the matcher works on: no diacritics, upper case."""
    return strip_diacritics(memo).upper()


@functools.lru_cache(maxsize=16)
def _window_pattern(prefix: str) -> re.Pattern[str]:
    # A zero-width lookahead so that overlapping windows are all tried: in
    # "MCMC7KD4..." the window at the first "MC" fails its check and the one
    # at the second "MC" succeeds.
    return re.compile(f"(?=({re.escape(prefix)}[{ALPHABET}]{{{RANDOM_LENGTH + 1}}}))")


def find_references(memo: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Return every valid reference in ``memo``, de-duplicated, in order of appearance.

    ``memo`` is the raw memo text from the bank; it may be in any case, carry
    diacritics and have the reference glued to other letters or digits on
    either side. Only windows whose check character validates are returned,
    in compact upper-case form. A memo may name several orders (a payer paying
    two dossiers at once), so all are returned; the caller decides.

    Raises :class:`stdnum.exceptions.InvalidFormat` for an unusable prefix.
    """
    check_prefix(prefix)
    found: list[str] = []
    seen: set[str] = set()
    for match in _window_pattern(prefix).finditer(normalize_memo(memo)):
        candidate = match.group(1)
        # The pattern already guarantees prefix, length and alphabet; only the
        # check character is left to verify.
        if candidate not in seen and calc_check_digit(candidate[:-1]) == candidate[-1]:
            seen.add(candidate)
            found.append(candidate)
    return found
