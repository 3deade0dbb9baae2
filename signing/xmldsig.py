"""Enveloped XMLDSig as the Vietnamese tax authority uses it, built and checked with signxml.

The profile (docs/domain.md, "Signatures"): inclusive c14n 1.0, ``rsa-sha256``, ``xmlenc#sha256``;
reference 1 points at the business data element by its ``Id``; reference 2 points at a
``ds:Object`` holding ``SignatureProperties/SignatureProperty/SigningTime`` in local time without
a zone; ``KeyInfo/X509Data`` carries ``X509SubjectName`` and ``X509Certificate``.

signxml does not emit that second reference for enveloped signatures (its
``signature_properties`` is for detached ones), so three small, documented hooks are used:

- the ``ds:Object`` is pre-built inside the ``<ds:Signature Id="placeholder"/>`` that signxml
  replaces, so signxml digests it in place like any other referenced element;
- that reference gets only the c14n transform: the enveloped-signature transform signxml adds
  to every enveloped reference would, in any standard verifier (xmlsec1, .NET, Java), remove the
  whole Signature, and with it the Object, before digesting;
- a signature annotator (signxml's public extension hook) sets the Signature ``Id`` and moves
  the Object after ``KeyInfo``, where the XMLDSig schema wants it; neither is covered by the
  SignedInfo, so moving them after digesting is safe.

``KeyInfo`` is passed as a ready element (signxml's ``key_info=``) because signxml writes no
``X509SubjectName``.
"""

from __future__ import annotations

import re
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, cast
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import (
    InvalidCertificate,
    InvalidDigest,
    InvalidInput,
    InvalidSignature,
    SignXMLException,
)
from signxml.signer import SignatureReference, XMLSigner
from signxml.util import SigningSettings
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from settings.clock import utcnow
from settings.untrusted_xml import DEFAULT_MAX_BYTES as UNTRUSTED_MAX_BYTES
from settings.untrusted_xml import (
    UntrustedXmlError,
    UntrustedXmlReason,
    hardened_parser,
    parse_untrusted,
)
from signing.certs import common_name_of, has_signing_key_usage, is_development, tax_code_of
from signing.keys import KeySource

__all__ = [
    "C14N_ALGORITHM",
    "DEFAULT_MAX_BYTES",
    "DIGEST_ALGORITHM",
    "DS_NS",
    "PLACEHOLDER_ID",
    "SIGNATURE_ALGORITHM",
    "SIGNING_TIME_FORMAT",
    "VIETNAM_TZ",
    "XmlSignatureStatus",
    "sign_enveloped",
    "verify_enveloped",
]

DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
C14N_ALGORITHM: Final = CanonicalizationMethod.CANONICAL_XML_1_0
"""Pinned: signxml defaults to c14n 1.1, which the tax authority's verifiers do not expect."""
SIGNATURE_ALGORITHM: Final = SignatureMethod.RSA_SHA256
DIGEST_ALGORITHM: Final = DigestAlgorithm.SHA256
ENVELOPED_TRANSFORM: Final = SignatureConstructionMethod.enveloped.value
PLACEHOLDER_ID: Final = "placeholder"
"""``<ds:Signature Id="placeholder"/>`` marks where the caller wants the signature."""
SIGNING_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
"""Local time without zone, e.g. ``2026-11-03T10:15:00``."""
VIETNAM_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_MAX_BYTES: Final = UNTRUSTED_MAX_BYTES
"""Receipts are a few KB; summaries a few MB. Anything larger is refused before parsing."""

_SIGNING_TIME_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_EXPECTED_REFERENCES = 2
_ALLOWED_TRANSFORMS = frozenset({ENVELOPED_TRANSFORM, C14N_ALGORITHM.value})
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_SCHEMA_STAND_IN_NS = "urn:motcua-pay:schema-check"
"""SigningTime is unqualified (as the tax authority writes it), which the XMLDSig schema's
``##other`` wildcard rejects; for schema validation only, it is moved into this namespace."""


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


@dataclass(frozen=True)
class _PropertiesReference(SignatureReference):
    """Reference to the SigningTime ``ds:Object``: it must not get the enveloped transform."""


class _ProfileSigner(XMLSigner):
    """signxml's signer with per-reference transforms for the SigningTime Object."""

    def _build_transforms_for_reference(
        self,
        *,
        transforms_node: etree._Element,
        reference: SignatureReference,
        exclude_c14n_transform_element: bool = True,
    ) -> None:
        if isinstance(reference, _PropertiesReference):
            method = reference.c14n_method or C14N_ALGORITHM
            etree.SubElement(transforms_node, _ds("Transform"), Algorithm=method.value)
            return
        super()._build_transforms_for_reference(
            transforms_node=transforms_node,
            reference=reference,
            exclude_c14n_transform_element=exclude_c14n_transform_element,
        )


def _copy(root: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(root, with_tail=False), parser=hardened_parser())


def _counterpart(
    original_root: etree._Element, copy_root: etree._Element, node: etree._Element
) -> etree._Element:
    """Find in the copy the element at the same position as ``node`` in the original."""
    steps: list[int] = []
    current = node
    while current is not original_root:
        parent = current.getparent()
        if parent is None:
            raise ValueError("placeholder_parent is not inside root")
        steps.append(parent.index(current))
        current = parent
    found = copy_root
    for index in reversed(steps):
        found = found[index]
    return found


def _elements_with_id(root: etree._Element, value: str) -> list[etree._Element]:
    return [el for el in root.iter() if isinstance(el.tag, str) and el.get("Id") == value]


def _ensure_placeholder(work: etree._Element, parent: etree._Element | None) -> etree._Element:
    existing = work.findall(f".//{_ds('Signature')}[@Id='{PLACEHOLDER_ID}']")
    if parent is None:
        if len(existing) > 1:
            raise ValueError("the document holds more than one signature placeholder")
        if existing:
            placeholder = existing[0]
        else:
            placeholder = etree.SubElement(
                work, _ds("Signature"), {"Id": PLACEHOLDER_ID}, nsmap={"ds": DS_NS}
            )
    else:
        own = [el for el in existing if el.getparent() is parent]
        if len(own) != len(existing) or len(own) > 1:
            raise ValueError("a signature placeholder exists outside placeholder_parent")
        placeholder = (
            own[0]
            if own
            else etree.SubElement(
                parent, _ds("Signature"), {"Id": PLACEHOLDER_ID}, nsmap={"ds": DS_NS}
            )
        )
    if len(placeholder) or (placeholder.text or "").strip():
        raise ValueError("the signature placeholder must be empty")
    placeholder.text = None
    return placeholder


def _build_signing_time_object(
    placeholder: etree._Element, object_id: str, signature_id: str, local_time: str
) -> None:
    obj = etree.SubElement(placeholder, _ds("Object"), {"Id": object_id})
    properties = etree.SubElement(obj, _ds("SignatureProperties"))
    prop = etree.SubElement(properties, _ds("SignatureProperty"), {"Target": f"#{signature_id}"})
    # SigningTime has no namespace. Under a default namespace it must undeclare it, which
    # libxml2 does not do on its own: without this it would silently join that namespace.
    # (lxml accepts the None key for the default namespace; lxml-stubs do not know it.)
    undeclare = cast("dict[str, str]", {None: ""}) if placeholder.nsmap.get(None) else None
    etree.SubElement(prop, "SigningTime", nsmap=undeclare).text = local_time


def _inherited_xml_attributes(element: etree._Element) -> list[str]:
    """``xml:*`` attributes on the ancestors of ``element``.

    Inclusive c14n 1.0 copies them into a signed subtree; signxml does not, so signing or
    verifying below them would disagree with xmlsec1, .NET and Java verifiers.
    """
    prefix = f"{{{_XML_NS}}}"
    found: list[str] = []
    for ancestor in element.iterancestors():
        found.extend(str(name) for name in ancestor.attrib if str(name).startswith(prefix))
    return found


def _key_info(certificate: x509.Certificate) -> etree._Element:
    key_info = etree.Element(_ds("KeyInfo"))
    x509_data = etree.SubElement(key_info, _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509SubjectName")).text = certificate.subject.rfc4514_string()
    etree.SubElement(x509_data, _ds("X509Certificate")).text = b64encode(
        certificate.public_bytes(Encoding.DER)
    ).decode("ascii")
    return key_info


def sign_enveloped(
    root: etree._Element,
    *,
    signed_id: str,
    key: KeySource,
    signing_time: datetime,
    tz: ZoneInfo,
    placeholder_parent: etree._Element | None = None,
    signature_id: str | None = None,
) -> etree._Element:
    """Sign the element whose ``Id`` is ``signed_id`` and return a new, signed document.

    ``root`` is left untouched, so a failure never leaves a half-signed document behind. The
    Signature goes where the caller put ``<ds:Signature Id="placeholder"/>``; if there is none,
    a placeholder is appended to ``placeholder_parent`` (e.g. ``DSCKS/NBan``) or, failing that,
    to ``root``. ``signing_time`` must be timezone-aware; it is written in ``tz`` local time
    because that is what receipts show and what the tax authority expects. ``signature_id``
    defaults to ``<signed_id>-sig`` so that repeated runs give identical output.
    """
    if signing_time.tzinfo is None or signing_time.utcoffset() is None:
        raise ValueError("signing_time must be timezone-aware")
    sig_id = signature_id or f"{signed_id}-sig"
    object_id = f"{sig_id}-signingtime"
    work = _copy(root)
    target_parent = (
        None if placeholder_parent is None else _counterpart(root, work, placeholder_parent)
    )
    signed_elements = _elements_with_id(work, signed_id)
    if len(signed_elements) != 1:
        raise ValueError(f"exactly one element must carry Id={signed_id!r}")
    for taken in (sig_id, object_id):
        if _elements_with_id(work, taken):
            raise ValueError(f"Id {taken!r} is already used in the document")
    placeholder = _ensure_placeholder(work, target_parent)
    if _inherited_xml_attributes(signed_elements[0]) or _inherited_xml_attributes(placeholder):
        raise ValueError(
            "xml:lang/xml:space/xml:base above the signed element or the signature would make "
            "standard verifiers compute other digests; move them onto the signed element"
        )
    local_time = signing_time.astimezone(tz).strftime(SIGNING_TIME_FORMAT)
    _build_signing_time_object(placeholder, object_id, sig_id, local_time)

    def finish_signature(sig_root: etree._Element, signing_settings: SigningSettings) -> None:
        sig_root.set("Id", sig_id)
        for obj in sig_root.findall(_ds("Object")):
            sig_root.append(obj)

    signer = _ProfileSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SIGNATURE_ALGORITHM,
        digest_algorithm=DIGEST_ALGORITHM,
        c14n_algorithm=C14N_ALGORITHM,
    )
    signer.signature_annotators.append(finish_signature)
    signed: etree._Element = signer.sign(
        work,
        key=key.private_key,
        reference_uri=[
            SignatureReference(URI=f"#{signed_id}"),
            _PropertiesReference(URI=f"#{object_id}"),
        ],
        key_info=_key_info(key.certificate),
        id_attribute="Id",
    )
    return signed


@dataclass(frozen=True, slots=True)
class XmlSignatureStatus:
    """The verdict on one enveloped signature, with what a viewer shows.

    Fields other than ``valid``, ``problems`` and ``signed_element`` describe what the signature
    *claims*; they are only trustworthy when ``valid`` is true.
    """

    valid: bool
    """The bottom line: signature, digests, profile and (if asked) chain all check out."""
    signer_common_name: str | None
    """The certificate subject CN: "signed by"."""
    tax_code: str | None
    """The tax code from the certificate's ``UID=MST:...``."""
    signing_time: str | None
    """``SigningTime`` as written (local time, no zone), taken from the signed Object if valid."""
    certificate: x509.Certificate | None
    """The signing certificate carried in ``KeyInfo``."""
    signed_element: etree._Element | None
    """What reference 1 actually covers, rebuilt from the canonical bytes that were digested.

    Only set when ``valid`` is true. Downstream code must read the data
    from here, never from the submitted document, which may hold unsigned look-alike elements.
    """
    problems: tuple[str, ...]
    """Each reason the signature is not valid, in plain words; empty when valid."""
    signature_id: str | None = None
    """The ``Id`` of the verified ``ds:Signature``."""
    development: bool = False
    """The certificate is marked as a development certificate: no legal validity."""
    trusted_chain: bool | None = None
    """Whether the certificate chains to ``trusted_ca``; ``None`` when no CA was given."""


def _failed(problem: str) -> XmlSignatureStatus:
    return XmlSignatureStatus(
        valid=False,
        signer_common_name=None,
        tax_code=None,
        signing_time=None,
        certificate=None,
        signed_element=None,
        problems=(problem,),
    )


def _select_signature(
    root: etree._Element, signature_id: str | None
) -> tuple[etree._Element | None, str | None]:
    signatures = [root] if root.tag == _ds("Signature") else list(root.iter(_ds("Signature")))
    if signature_id is not None:
        signatures = [sig for sig in signatures if sig.get("Id") == signature_id]
        if len(signatures) != 1:
            return None, f"found {len(signatures)} signatures with Id {signature_id!r}, expected 1"
        return signatures[0], None
    if len(signatures) != 1:
        return None, (
            f"found {len(signatures)} signatures, expected 1"
            + ("; say which with signature_id" if signatures else "")
        )
    return signatures[0], None


def _signxml_location(root: etree._Element, signature: etree._Element) -> str | None:
    """The ``location`` that makes signxml pick exactly ``signature``, or ``None`` if none does."""
    parent = signature.getparent()
    if parent is None:
        return None
    first = parent.find(_ds("Signature"))
    if first is not signature:
        return None
    if parent is root:
        return "./"
    return f"./{root.getroottree().getelementpath(parent)}/"


def _signing_time_in(obj: etree._Element) -> tuple[etree._Element | None, str | None]:
    """Return the SignatureProperty holding SigningTime and its text (no namespace or ds)."""
    for prop in obj.iterfind(f"{_ds('SignatureProperties')}/{_ds('SignatureProperty')}"):
        for tag in ("SigningTime", _ds("SigningTime")):
            found = prop.find(tag)
            if found is not None:
                return prop, (found.text or "").strip()
    return None, None


def _schema_problem(signature: etree._Element) -> str | None:
    stand_in = _copy(signature)
    for element in stand_in.iter("SigningTime", _ds("SigningTime")):
        element.tag = f"{{{_SCHEMA_STAND_IN_NS}}}SigningTime"
    try:
        validate = cast("Callable[[etree._Element], None]", XMLVerifier().validate_schema)
        validate(stand_in)
    except etree.DocumentInvalid as exc:
        return f"the signature does not follow the XMLDSig schema: {exc}"
    return None


def _profile_problems(signature: etree._Element) -> list[str]:
    """Check the signature against the tax authority profile before trusting any of it."""
    problems: list[str] = []
    signed_info = signature.find(_ds("SignedInfo"))
    if signed_info is None:
        return ["the signature has no SignedInfo"]
    c14n = signed_info.find(_ds("CanonicalizationMethod"))
    c14n_alg = None if c14n is None else c14n.get("Algorithm")
    if c14n_alg != C14N_ALGORITHM.value:
        problems.append(f"canonicalisation is {c14n_alg}, expected {C14N_ALGORITHM.value}")
    method = signed_info.find(_ds("SignatureMethod"))
    method_alg = None if method is None else method.get("Algorithm")
    if method_alg != SIGNATURE_ALGORITHM.value:
        problems.append(f"signature method is {method_alg}, expected {SIGNATURE_ALGORITHM.value}")
    references = signed_info.findall(_ds("Reference"))
    if len(references) != _EXPECTED_REFERENCES:
        problems.append(
            f"the signature has {len(references)} references, expected {_EXPECTED_REFERENCES}"
            " (the signed data and the SigningTime object)"
        )
    for index, reference in enumerate(references, start=1):
        digest = reference.find(_ds("DigestMethod"))
        digest_alg = None if digest is None else digest.get("Algorithm")
        if digest_alg != DIGEST_ALGORITHM.value:
            problems.append(
                f"reference {index} digest is {digest_alg}, expected {DIGEST_ALGORITHM.value}"
            )
        for transform in reference.iterfind(f"{_ds('Transforms')}/{_ds('Transform')}"):
            algorithm = transform.get("Algorithm")
            if algorithm not in _ALLOWED_TRANSFORMS:
                problems.append(f"reference {index} uses the unsupported transform {algorithm}")
    x509_data = signature.find(f"{_ds('KeyInfo')}/{_ds('X509Data')}")
    if x509_data is None or x509_data.find(_ds("X509SubjectName")) is None:
        problems.append("KeyInfo/X509Data carries no X509SubjectName")
    if x509_data is None or x509_data.find(_ds("X509Certificate")) is None:
        problems.append("KeyInfo/X509Data carries no X509Certificate")
    schema_problem = _schema_problem(signature)
    if schema_problem is not None:
        problems.append(schema_problem)
    return problems


def _inheritance_problems(
    root: etree._Element, signature: etree._Element, id_attribute: str
) -> list[str]:
    targets = {
        (reference.get("URI") or "").removeprefix("#")
        for reference in signature.iterfind(f"{_ds('SignedInfo')}/{_ds('Reference')}")
    }
    problems: list[str] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element.get(id_attribute) not in targets:
            continue
        inherited = _inherited_xml_attributes(element)
        if inherited:
            problems.append(
                f"{', '.join(sorted(set(inherited)))} above the signed element "
                f"{element.get(id_attribute)!r} is not supported (canonical forms would differ)"
            )
    return problems


def _embedded_certificates(signature: etree._Element) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for element in signature.iterfind(
        f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}"
    ):
        certificates.append(
            x509.load_der_x509_certificate(b64decode("".join((element.text or "").split())))
        )
    return certificates


_DN_ALIASES = {
    "S": "ST",
    "E": "EMAILADDRESS",
    "OID.0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.1": "UID",
    "OID.2.5.4.5": "SERIALNUMBER",
    "2.5.4.5": "SERIALNUMBER",
}


def _dn_parts(text: str) -> list[tuple[str, str]]:
    """Split an RFC 4514-ish DN into sorted (type, value) pairs, tolerating ", " and order."""
    parts: list[tuple[str, str]] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char in ",;+":
            parts.append(_dn_pair("".join(current)))
            current = []
        else:
            current.append(char)
    parts.append(_dn_pair("".join(current)))
    return sorted(parts)


def _dn_pair(item: str) -> tuple[str, str]:
    kind, _, value = item.partition("=")
    kind = kind.strip().upper()
    return _DN_ALIASES.get(kind, kind), value.strip()


def _subject_name_matches(subject_text: str, certificate: x509.Certificate) -> bool:
    return _dn_parts(subject_text) == _dn_parts(certificate.subject.rfc4514_string())


def _chain_problems(
    certificate: x509.Certificate,
    carried: Sequence[x509.Certificate],
    trusted_ca: x509.Certificate,
    at: datetime,
) -> list[str]:
    """Path to ``trusted_ca``, directly or through one intermediate carried in X509Data.

    Revocation (CRL/OCSP) is not checked here; that needs the fetchers issue 3 brings.
    """
    candidates = [trusted_ca] + [c for c in carried if c not in (certificate, trusted_ca)]
    for issuer in candidates:
        if issuer.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, CryptographyInvalidSignature):
            return ["the certificate's issuer signature does not verify"]
        if issuer is trusted_ca:
            return _validity_problems(trusted_ca, at, "the trusted CA certificate")
        problems = _validity_problems(issuer, at, "the intermediate CA certificate")
        try:
            issuer.verify_directly_issued_by(trusted_ca)
        except (ValueError, TypeError, CryptographyInvalidSignature):
            problems.append("the intermediate CA is not issued by the trusted CA")
        return problems
    return ["the certificate does not chain to the trusted CA"]


def _validity_problems(certificate: x509.Certificate, at: datetime, what: str) -> list[str]:
    if at < certificate.not_valid_before_utc or at > certificate.not_valid_after_utc:
        return [f"{what} was not valid at {at.isoformat()}"]
    return []


def _translate(exc: Exception) -> str:
    if isinstance(exc, InvalidDigest):
        return f"the signed content was changed after signing ({exc})"
    if isinstance(exc, InvalidCertificate):
        return f"the certificate was not valid at the signing time ({exc})"
    if isinstance(exc, InvalidSignature):
        return "the signature value does not match the signed information (altered or wrong key)"
    if isinstance(exc, InvalidInput):
        return f"the signature is malformed: {exc}"
    return f"the signature could not be verified: {exc}"


def verify_enveloped(
    xml_bytes: bytes,
    *,
    trusted_ca: x509.Certificate | None = None,
    id_attribute: str = "Id",
    signature_id: str | None = None,
    validation_time: datetime | None = None,
    tz: ZoneInfo = VIETNAM_TZ,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> XmlSignatureStatus:
    """Verify an enveloped signature made to the tax authority profile; never raises for bad input.

    signxml checks the signature with the certificate carried in the document (pinned with
    ``x509_cert=`` so that signxml does not consult the system trust store), the c14n and
    algorithms are pinned, and exactly two references are required. Trust is separate: pass
    ``trusted_ca`` to require a chain to it.

    The certificate must have been valid at ``validation_time``; by default at the document's
    own SigningTime (read in ``tz``), because the signed XML is the legal original and stays
    valid after the certificate expires. Without a timestamp authority that time is the
    signer's claim, which is also how the tax authority's viewers treat it.

    ``signature_id`` picks one signature when the document holds several (e.g. seller and tax
    authority); otherwise exactly one is required.
    """
    try:
        # Whitespace and comments are kept: the signature covers the document as it was signed.
        root = parse_untrusted(xml_bytes, what="the document", max_bytes=max_bytes)
    except UntrustedXmlError as exc:
        if exc.reason is UntrustedXmlReason.TOO_LARGE:
            return _failed(
                f"the document is {len(xml_bytes)} bytes, more than the {max_bytes} allowed"
            )
        return _failed(str(exc))

    signature, why = _select_signature(root, signature_id)
    if signature is None:
        return _failed(why or "no signature found")
    sig_id = signature.get("Id")
    problems = _profile_problems(signature)
    problems.extend(_inheritance_problems(root, signature, id_attribute))

    try:
        carried = _embedded_certificates(signature)
    except ValueError as exc:
        problems.append(f"the X509Certificate cannot be read: {exc}")
        carried = []
    certificate = carried[0] if carried else None

    claimed_prop: etree._Element | None = None
    claimed_time: str | None = None
    for obj in signature.iterfind(_ds("Object")):
        claimed_prop, claimed_time = _signing_time_in(obj)
        if claimed_prop is not None:
            break
    if claimed_prop is None:
        problems.append("no Object/SignatureProperties/SignatureProperty/SigningTime")

    at = validation_time
    if at is not None and at.tzinfo is None:
        return _failed("validation_time must be timezone-aware")
    if at is None and claimed_time and _SIGNING_TIME_SHAPE.match(claimed_time):
        at = datetime.strptime(claimed_time, SIGNING_TIME_FORMAT).replace(tzinfo=tz)
    if at is None:
        at = utcnow()

    signed_element: etree._Element | None = None
    signed_time: str | None = None
    location = _signxml_location(root, signature)
    if location is None:
        problems.append("the signature cannot be isolated (another signature shares its parent)")
    elif certificate is not None:
        config = SignatureConfiguration(
            require_x509=True,
            location=location,
            expect_references=_EXPECTED_REFERENCES,
            signature_methods=frozenset({SIGNATURE_ALGORITHM}),
            digest_algorithms=frozenset({DIGEST_ALGORITHM}),
            verification_time=at,
            default_reference_c14n_method=C14N_ALGORITHM,
        )
        try:
            outcome = XMLVerifier().verify(
                root,
                x509_cert=certificate,
                id_attribute=id_attribute,
                validate_schema=False,
                parser=hardened_parser(),
                expect_config=config,
            )
        except (SignXMLException, ValueError, TypeError, etree.LxmlError) as exc:
            problems.append(_translate(exc))
        else:
            results = outcome if isinstance(outcome, list) else [outcome]
            signed_element, signed_time, reference_problems = _read_results(
                results, signature, sig_id
            )
            problems.extend(reference_problems)

    if signed_time is not None and claimed_time is not None and signed_time != claimed_time:
        problems.append("the SigningTime shown differs from the SigningTime that was signed")
    signing_time = signed_time if signed_time is not None else claimed_time
    if signing_time is not None and not _SIGNING_TIME_SHAPE.match(signing_time):
        problems.append(f"SigningTime {signing_time!r} is not YYYY-MM-DDTHH:MM:SS local time")

    trusted_chain: bool | None = None
    if certificate is not None:
        subject_name = signature.find(
            f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509SubjectName')}"
        )
        if subject_name is not None and not _subject_name_matches(
            subject_name.text or "", certificate
        ):
            problems.append("X509SubjectName does not name the certificate's subject")
        if not has_signing_key_usage(certificate):
            problems.append(
                "the certificate's key usage does not allow digitalSignature and nonRepudiation"
            )
        if trusted_ca is not None:
            chain = _chain_problems(certificate, carried, trusted_ca, at.astimezone(UTC))
            trusted_chain = not chain
            problems.extend(chain)

    return XmlSignatureStatus(
        valid=not problems,
        signer_common_name=None if certificate is None else common_name_of(certificate),
        tax_code=None if certificate is None else tax_code_of(certificate),
        signing_time=signing_time,
        certificate=certificate,
        signed_element=signed_element if not problems else None,
        problems=tuple(problems),
        signature_id=sig_id,
        development=certificate is not None and is_development(certificate),
        trusted_chain=trusted_chain,
    )


def _read_results(
    results: Sequence[VerifyResult], signature: etree._Element, sig_id: str | None
) -> tuple[etree._Element | None, str | None, list[str]]:
    """Split signxml's results into the signed data and the signed SigningTime, and check them.

    Works on what signxml returns (the canonical bytes that were digested), never on the
    submitted document. signxml returns results in SignedInfo order, which pairs them with URIs.
    """
    problems: list[str] = []
    uris = [
        reference.get("URI") or ""
        for reference in signature.iterfind(f"{_ds('SignedInfo')}/{_ds('Reference')}")
    ]
    own_objects = {f"#{obj.get('Id')}" for obj in signature.iterfind(_ds("Object"))}
    data: list[etree._Element] = []
    times: list[tuple[etree._Element, str | None]] = []
    for uri, result in zip(uris, results, strict=True):
        signed = result.signed_xml
        if signed is None:
            problems.append(f"reference {uri!r} covers something that is not an XML element")
        elif signed.tag != _ds("Object"):
            data.append(signed)
        elif uri not in own_objects:
            problems.append(f"reference {uri!r} points at an Object outside this signature")
        else:
            prop, text = _signing_time_in(signed)
            if prop is None:
                problems.append("the signed Object holds no SigningTime")
            else:
                times.append((prop, text))
    if len(data) != 1 or len(times) != 1:
        problems.append(
            "expected one reference to the signed data and one to the SigningTime object"
        )
        return None, None, problems
    prop, text = times[0]
    if sig_id is None or prop.get("Target") != f"#{sig_id}":
        problems.append(f"SignatureProperty Target is {prop.get('Target')!r}, expected '#{sig_id}'")
    return data[0], text, problems
