"""Constants shared by the signing tests (a module, since conftest is not importable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "ORG_NAME",
    "ORG_TAX_CODE",
    "OTHER_ORG_NAME",
    "OTHER_TAX_CODE",
    "SAMPLE_XML",
    "CertFactory",
    "Pki",
]

ORG_NAME = "Ủy ban nhân dân phường Bến Nghé"
ORG_TAX_CODE = "0312345678"
OTHER_ORG_NAME = "Trung tâm Phục vụ hành chính công tỉnh Đồng Nai"
OTHER_TAX_CODE = "3600000123"

SAMPLE_XML = """<BLai>
  <DLBLai Id="data">
    <TTChung>
      <PBan>2.1.0</PBan><THDon>Biên lai thu phí, lệ phí</THDon><KHMSBLai>01BLP0-001</KHMSBLai>
    </TTChung>
    <NDBLai>
      <TNNop>Nguyễn Văn Ánh</TNNop>
      <DChi>12 đường Lê Lợi, phường Bến Nghé, Thành phố Hồ Chí Minh</DChi>
      <DSPhi>
        <Phi><Ten>Lệ phí chứng thực bản sao từ bản chính</Ten><STien>10000</STien></Phi>
      </DSPhi>
      <TgTien>10000</TgTien><TgTienBChu>Mười nghìn đồng</TgTienBChu>
    </NDBLai>
  </DLBLai>
  <DSCKS><NBan><ds:Signature Id="placeholder" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></NBan></DSCKS>
</BLai>"""


@dataclass(frozen=True)
class Pki:
    """A CA and one organisation certificate issued by it, with their keys."""

    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate
    org_key: rsa.RSAPrivateKey
    org_cert: x509.Certificate


CertFactory = Callable[..., x509.Certificate]
"""The ``make_cert`` fixture: builds an organisation certificate with the requested flaws."""
