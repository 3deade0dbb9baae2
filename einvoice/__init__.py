"""Electronic receipts (biên lai điện tử): content, numbering, the signed XML legal original.

Never imports ``payments``: a receipt is issued from a plain
:class:`einvoice.document.ReceiptRequest`.
"""
