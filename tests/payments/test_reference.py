"""The transfer reference: format, errors, randomness and error-detection guarantees."""

from __future__ import annotations

import math
import secrets

import pytest
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError

from payments import reference
from payments.reference import (
    ALPHABET,
    DEFAULT_PREFIX,
    LENGTH,
    MAX_PREFIX_LENGTH,
    RANDOM_LENGTH,
    calc_check_digit,
    compact,
    generate,
    is_valid,
    reference_length,
    validate,
)

KNOWN = "MC7KD4WQ2RXHG"


def test_known_reference() -> None:
    assert calc_check_digit("MC7KD4WQ2RXH") == "G"
    assert validate(KNOWN) == KNOWN
    assert is_valid(KNOWN)


def test_alphabet_has_no_ambiguous_characters() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 29
    assert not set("01OILUZ") & set(ALPHABET)
    assert ALPHABET.isascii() and ALPHABET.upper() == ALPHABET
    assert set(DEFAULT_PREFIX) <= set(ALPHABET)


def test_alphabet_size_is_prime_and_2_is_a_primitive_root() -> None:
    # What makes the pure ISO 7064 system catch every substitution and transposition.
    m = len(ALPHABET)
    assert all(m % d for d in range(2, m))
    assert sorted(pow(2, k, m) for k in range(1, m)) == list(range(1, m))


def test_length_and_randomness_budget() -> None:
    assert LENGTH == reference_length() == 13
    assert reference_length("A" * MAX_PREFIX_LENGTH) <= 25
    assert RANDOM_LENGTH * math.log2(len(ALPHABET)) >= 45


def test_generate_shape() -> None:
    for _ in range(200):
        ref = generate()
        assert len(ref) == LENGTH
        assert ref.startswith("MC")
        assert set(ref) <= set(ALPHABET)
        assert validate(ref) == ref


def test_generate_is_unique_enough() -> None:
    refs = {generate() for _ in range(5000)}
    assert len(refs) == 5000


def test_generate_uses_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The random part is one ``secrets.randbelow(29**10)`` written in base 29, least
    significant digit first: 0 → all "2", and the largest draw → all "Y"."""
    draws: list[int] = []

    def randbelow(n: int, value: int = 0) -> int:
        draws.append(n)
        return value

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    ref = generate()
    assert draws == [len(ALPHABET) ** RANDOM_LENGTH]
    assert ref == "MC" + "2" * RANDOM_LENGTH + calc_check_digit("MC" + "2" * RANDOM_LENGTH)

    monkeypatch.setattr(secrets, "randbelow", lambda n: n - 1)
    assert generate()[2:-1] == "Y" * RANDOM_LENGTH
    monkeypatch.setattr(secrets, "randbelow", lambda n: 1 + 3 * len(ALPHABET))
    assert generate()[2:4] == ALPHABET[1] + ALPHABET[3]


def test_generate_covers_the_alphabet_evenly() -> None:
    """Every position takes every character, in roughly equal shares (a base-29 slip, e.g.
    dividing by 28, would starve the last character or a position)."""
    counts = [dict.fromkeys(ALPHABET, 0) for _ in range(RANDOM_LENGTH)]
    n = 29 * 400
    for _ in range(n):
        for position, char in enumerate(generate()[2:-1]):
            counts[position][char] += 1
    for position in counts:
        assert min(position.values()) > 400 * 0.6
        assert max(position.values()) < 400 * 1.4


def test_generate_with_other_prefix() -> None:
    ref = generate("HN")
    assert ref.startswith("HN") and len(ref) == 13
    assert is_valid(ref, prefix="HN")
    assert not is_valid(ref)  # default prefix MC
    with pytest.raises(InvalidFormat):
        validate(ref)


@pytest.mark.parametrize("prefix", ["", "mc", "M0", "MO", "ML", "M-C", "ABCDEFG", "MĆ"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(InvalidFormat):
        generate(prefix)
    with pytest.raises(InvalidFormat):
        validate(KNOWN, prefix=prefix)


def test_compact_and_format() -> None:
    assert compact(" mc-7kd4.wq2r xhg ") == KNOWN
    assert validate("mc 7kd4-wq2r.xhg") == KNOWN
    assert reference.format("mc-7kd4 wq2rxhg") == KNOWN


def test_every_single_substitution_is_detected() -> None:
    for ref in [KNOWN, *(generate() for _ in range(30))]:
        for i, original in enumerate(ref):
            for c in ALPHABET:
                if c != original:
                    mutated = ref[:i] + c + ref[i + 1 :]
                    assert not is_valid(mutated), (ref, mutated)


def _checks(text: str) -> bool:
    """The check character alone, whatever the prefix."""
    return calc_check_digit(text[:-1]) == text[-1]


def test_every_transposition_is_detected() -> None:
    # Adjacent, jump and any-distance swaps of two different characters,
    # including swaps involving the prefix and the check character.
    for ref in [KNOWN, *(generate() for _ in range(30))]:
        for i in range(len(ref)):
            for j in range(i + 1, len(ref)):
                if ref[i] != ref[j]:
                    chars = list(ref)
                    chars[i], chars[j] = chars[j], chars[i]
                    assert not _checks("".join(chars)), (ref, i, j)


def test_every_adjacent_transposition_exhaustively() -> None:
    # Whatever the text before it (its running checksum `state`), "ab" and
    # "ba" never leave the same state: prime modulus, radix 2 != 1.
    m = len(ALPHABET)
    for state in range(m):
        for a in range(m):
            for b in range(m):
                if a != b:
                    assert (4 * state + 2 * a + b) % m != (4 * state + 2 * b + a) % m


def test_twin_errors_are_detected() -> None:
    body = "MC22D4WQ8RXH"
    ref = body + calc_check_digit(body)
    for c in ALPHABET:
        if c != "2":
            assert not _checks(ref[:2] + c + c + ref[4:])


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("MC7KD4WQ2RXH", InvalidLength),
        ("MC7KD4WQ2RXHGG", InvalidLength),
        ("", InvalidLength),
        ("MC7KD4WQ2RXH0", InvalidFormat),
        ("MC7KD4WO2RXHG", InvalidFormat),
        ("MC7KD4WQIRXHG", InvalidFormat),
        ("MC7KD4WQ2RXHĐ", InvalidFormat),
        ("HN7KD4WQ2RXHG", InvalidFormat),
        ("MC7KD4WQ2RXHH", InvalidChecksum),
        ("MC7KD4WQ2RHXG", InvalidChecksum),
    ],
)
def test_errors(value: str, error: type[ValidationError]) -> None:
    with pytest.raises(error):
        validate(value)
    assert not is_valid(value)


def test_errors_are_stdnum_and_value_errors() -> None:
    assert reference.InvalidChecksum is InvalidChecksum
    assert issubclass(reference.InvalidLength, reference.InvalidFormat)
    assert issubclass(reference.ValidationError, ValueError)


def test_calc_check_digit_rejects_foreign_characters() -> None:
    with pytest.raises(InvalidFormat):
        calc_check_digit("MC0")
    with pytest.raises(InvalidFormat):
        calc_check_digit("")
