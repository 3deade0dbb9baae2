"""Transfer reference (mã tham chiếu chuyển khoản) put into the VietQR memo.

A citizen paying by bank transfer cannot be identified by name or amount: banks
rewrite the memo (strip diacritics, upper-case it, glue their own text on both
sides, e.g. ``MBVCB.3278123.MC7KD4WQ2RXHG.CHUYEN TIEN``). What survives is a
short run of upper-case ASCII letters and digits, so the reference is exactly
that, and it carries a check character so a matcher can tell a real reference
from a lookalike run of text.

Shape: ``<prefix><10 random characters><1 check character>``, 13 characters
with the default prefix ``MC`` (the limit for the memo is 25).

Alphabet (29 characters)::

    23456789ABCDEFGHJKMNPQRSTVWXY

It is Crockford's Base32 alphabet without ``0``, ``1`` and ``Z``: no
``0/O``, ``1/I/L`` or ``2/Z`` pairs a cashier or citizen could confuse when
reading the reference aloud or typing it, and no ``U`` (Crockford's choice).
Leaving out the vowels ``I O U`` also means diacritic-stripped Vietnamese words
(``CHUYEN``, ``TIEN``, ``PHONG``) rarely form a candidate window by accident.
Ten random characters give 10 * log2(29) = 48.6 bits from :mod:`secrets`.

Check character: ISO 7064 *pure system* with radix 2 (the structure of
MOD 11-2 and MOD 37-2) over the prime modulus 29, i.e. "MOD 29-2", computed
with :mod:`stdnum.iso7064.mod_37_2` and our alphabet. Because 29 is prime and
2 is a primitive root modulo 29 (its weights repeat only every 28 positions),
it detects **every** single substitution, every adjacent transposition, every
jump and twin error, and in fact every transposition of two different
characters within a reference of up to 28 characters.

Why not :mod:`stdnum.iso7064.mod_37_36`: that hybrid system needs an even
alphabet size (36 here would need the ambiguous characters back), and even
then it misses a few adjacent transpositions: an exhaustive check over every
running state and every pair ``a != b`` finds 72 of 45,360 combinations (36
characters) where ``ab`` and ``ba`` leave the same checksum, and 60 of 26,100
for a 30-character alphabet. The pure system misses none.

The prefix is covered by the check character, so a reference minted for one
prefix never validates under another.

The module follows python-stdnum's shape (``compact``, ``calc_check_digit``,
``validate``, ``is_valid``, ``format``) and raises stdnum's own exceptions.

>>> validate('mc-7kd4 wq2r.xhg')
'MC7KD4WQ2RXHG'
>>> calc_check_digit('MC7KD4WQ2RXH')
'G'
>>> is_valid('MC7KD4WQ2RHXG')  # adjacent transposition
False
"""

from __future__ import annotations

import re
import secrets

from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError
from stdnum.iso7064 import mod_37_2
from stdnum.util import clean

__all__ = [
    "ALPHABET",
    "DEFAULT_PREFIX",
    "LENGTH",
    "MAX_PREFIX_LENGTH",
    "RANDOM_LENGTH",
    "InvalidChecksum",
    "InvalidFormat",
    "InvalidLength",
    "ValidationError",
    "calc_check_digit",
    "check_prefix",
    "compact",
    "format",
    "generate",
    "is_valid",
    "reference_length",
    "validate",
]

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXY"
"""The 29 characters a reference is made of (prime count: see the module docstring)."""

DEFAULT_PREFIX = "MC"
"""Prefix of references minted by this service ("một cửa")."""

RANDOM_LENGTH = 10
"""Random characters after the prefix: 10 * log2(29) = 48.6 bits."""

MAX_PREFIX_LENGTH = 6
"""Longest prefix accepted; keeps a reference well under the 25-character memo limit."""

LENGTH = len(DEFAULT_PREFIX) + RANDOM_LENGTH + 1
"""Length of a reference with the default prefix (13)."""

_ALPHABET_SET = frozenset(ALPHABET)
_BASE = len(ALPHABET)
_RANDOM_SPACE = _BASE**RANDOM_LENGTH
_PREFIX_RE = re.compile(f"[{ALPHABET}]{{1,{MAX_PREFIX_LENGTH}}}")


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a reference, else raise :class:`InvalidFormat`.

    The prefix is part of the checksummed text, so it must use the alphabet too.
    """
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise InvalidFormat(f"The prefix must be 1-{MAX_PREFIX_LENGTH} characters of {ALPHABET!r}.")
    return prefix


def reference_length(prefix: str = DEFAULT_PREFIX) -> int:
    """Total length of a reference minted with ``prefix`` (check character included)."""
    return len(check_prefix(prefix)) + RANDOM_LENGTH + 1


def compact(number: str) -> str:
    """Convert the reference to its minimal representation.

    Removes spaces, dots and dashes a person may have typed and upper-cases
    it. This is for references typed into a search box; bank memos go through
    :func:`payments.memo.find_references` instead.
    """
    return clean(number, " -.").strip().upper()


def calc_check_digit(number: str) -> str:
    """Calculate the check character for ``number`` (prefix + random part).

    ISO 7064 pure system MOD 29-2 over :data:`ALPHABET`.
    """
    if not number or any(c not in _ALPHABET_SET for c in number):
        raise InvalidFormat()
    return str(mod_37_2.calc_check_digit(number, alphabet=ALPHABET))


def validate(number: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Check the reference and return its compact form.

    Raises :class:`InvalidFormat` for a character outside the alphabet or a
    wrong prefix, :class:`InvalidLength` for a wrong length and
    :class:`InvalidChecksum` for a wrong check character.
    """
    check_prefix(prefix)
    number = compact(number)
    if any(c not in _ALPHABET_SET for c in number):
        raise InvalidFormat()
    if len(number) != len(prefix) + RANDOM_LENGTH + 1:
        raise InvalidLength()
    if not number.startswith(prefix):
        raise InvalidFormat(f"The reference does not start with {prefix!r}.")
    if calc_check_digit(number[:-1]) != number[-1]:
        raise InvalidChecksum()
    return number


def is_valid(number: str, prefix: str = DEFAULT_PREFIX) -> bool:
    """Check the reference without raising."""
    try:
        return bool(validate(number, prefix))
    except ValidationError:
        return False


def format(number: str) -> str:
    """Reformat the reference to its standard presentation.

    That is the compact, upper-case form, deliberately without grouping:
    people copy what they see into the transfer memo, and a reference with
    inserted spaces or dashes would not be recognised in a bank memo
    (:mod:`payments.memo` tolerates separators stripped around the reference,
    not inserted inside it). The name shadows the builtin on purpose: it is
    the python-stdnum name.
    """
    return compact(number)


def generate(prefix: str = DEFAULT_PREFIX) -> str:
    """Mint a new reference: ``prefix`` + 10 characters from :mod:`secrets` + check.

    References are unguessable, but not guaranteed unique: the store must
    enforce uniqueness and call again on a clash (29**10 = 4.2e14 values; a
    first clash is expected only after about 25 million references).
    """
    check_prefix(prefix)
    # One draw below 29**10 written in base 29 is exactly as uniform as ten separate
    # ``secrets.choice`` calls, at a quarter of the cost (this runs for every order).
    n = secrets.randbelow(_RANDOM_SPACE)
    digits = []
    for _ in range(RANDOM_LENGTH):
        n, d = divmod(n, _BASE)
        digits.append(ALPHABET[d])
    body = prefix + "".join(digits)
    return body + calc_check_digit(body)
