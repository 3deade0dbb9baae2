"""The confirmed facts and the configurable guesses are data in one place (einvoice/official.py,
einvoice/tax_authority/formats.py), and the settings' defaults agree with them."""

from __future__ import annotations

import pytest

from einvoice.official import (
    CONFIRMED_MESSAGE_CODES,
    DEFAULT_DOCUMENT_VERSION,
    DEFAULT_SUMMARY_CODE,
    DEFAULT_SUMMARY_RESULT_CODE,
    DOCUMENT_KIND_FOR_TEMPLATE,
    REGISTRATION_FLAG_FOR_TEMPLATE,
    REGISTRATION_FLAGS,
    FormatChoices,
)
from einvoice.tax_authority.formats import (
    LEGACY,
    RECEIVED_TYPE_FOR,
    RESULT_TYPE_FOR,
    MessageType,
    confirmed,
    for_version,
)
from settings.config import Settings


def test_the_settings_defaults_are_the_documented_ones() -> None:
    fields = Settings.model_fields
    assert fields["tax_document_version"].default == DEFAULT_DOCUMENT_VERSION == "2.1.0"
    assert fields["tax_summary_message_type"].default == DEFAULT_SUMMARY_CODE
    assert fields["tax_summary_result_type"].default == DEFAULT_SUMMARY_RESULT_CODE
    assert fields["receipt_mapping_switch_date"].default == FormatChoices().receipt_switch_on
    assert FormatChoices.from_settings(Settings()) == FormatChoices()


@pytest.mark.parametrize("value", ["2.1.2", "0.1", "2.1"])
def test_the_settings_refuse_an_unknown_pban(value: str) -> None:
    with pytest.raises(ValueError, match="tax_document_version"):
        Settings(tax_document_version=value)


@pytest.mark.parametrize(
    ("summary", "result"),
    [("304", "204"), ("400", "999"), ("110", "204"), ("400", "400")],
    ids=["confirmed-notice-code", "confirmed-ack-code", "confirmed-received-code", "same"],
)
def test_summary_codes_may_not_collide(summary: str, result: str) -> None:
    with pytest.raises(ValueError, match="must differ"):
        FormatChoices(summary_code=summary, summary_result_code=result)


def test_legacy_codes_are_frozen_and_the_confirmed_ones_are_the_e_document_familys() -> None:
    assert {kind.value: code for kind, code in LEGACY.codes.items()} == {
        "registration": "100",
        "registration_result": "103",
        "error_notice": "300",
        "error_notice_result": "301",
        "daily_summary": "400",
        "data_check_result": "204",
        "technical_ack": "999",
    }
    fmt = confirmed(FormatChoices(summary_code="402", summary_result_code="205"))
    assert {kind.value: code for kind, code in fmt.codes.items()} == {
        **CONFIRMED_MESSAGE_CODES,
        "daily_summary": "402",
        "data_check_result": "205",
    }
    assert CONFIRMED_MESSAGE_CODES == {
        "registration": "109",
        "registration_received": "110",
        "registration_result": "111",
        "error_notice": "304",
        "error_notice_result": "301",
        "technical_ack": "999",
    }


def test_every_code_reads_back_as_its_message_type() -> None:
    for fmt in (LEGACY, confirmed(FormatChoices())):
        for kind, code in fmt.codes.items():
            assert fmt.kind(code) is kind
        assert fmt.kind("212") is None  # the report on receipt use: not ours to send or read
        for request in RESULT_TYPE_FOR:
            assert RESULT_TYPE_FOR[request] in fmt.codes
    assert LEGACY.received_type(MessageType.REGISTRATION) is None
    received = confirmed(FormatChoices()).received_type(MessageType.REGISTRATION)
    assert received is RECEIVED_TYPE_FOR[MessageType.REGISTRATION]


def test_a_pban_names_its_mapping() -> None:
    assert for_version("0.1") is LEGACY
    for pban in ("2.1.0", "2.1.1"):
        fmt = for_version(pban)
        assert fmt is not None
        assert (fmt.mapping_version, fmt.document_version) == ("0.2", pban)
        assert fmt.accepts(pban) and not fmt.accepts("0.1")
    assert for_version("2.1.2") is None and for_version(None) is None


def test_template_codes_cover_both_receipt_templates() -> None:
    assert (
        set(REGISTRATION_FLAG_FOR_TEMPLATE)
        == set(DOCUMENT_KIND_FOR_TEMPLATE)
        == {
            "EBL01",
            "EBL02",
        }
    )
    assert set(REGISTRATION_FLAG_FOR_TEMPLATE.values()) <= set(REGISTRATION_FLAGS)
    assert DOCUMENT_KIND_FOR_TEMPLATE == {"EBL01": "3", "EBL02": "4"}
