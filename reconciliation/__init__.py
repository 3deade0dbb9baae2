"""The daily close: bank credits ↔ payments ↔ receipts ↔ the tax authority's summary.

Reads ``payments`` and ``einvoice``; sends what the tax authority still lacks through
``einvoice.tax_authority``; never edits a payment or a receipt (corrections are events).
"""
