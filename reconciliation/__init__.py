"""The daily close (bank ↔ payments ↔ receipts ↔ tax summary).

UNFINISHED: built by issue 5; nothing lives here yet.
"""
