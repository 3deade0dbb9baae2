"""Keys, certificates, and XMLDSig/PAdES signing and verification.

Knows nothing about receipts or payments: it signs and verifies documents with a key source.
Import the submodules (``signing.keys``, ``signing.certs``, ``signing.xmldsig``,
``signing.errors``); nothing is re-exported here so that importing one does not load the XML
and PDF stacks of the others.
"""

__all__ = ["certs", "errors", "keys", "xmldsig"]
