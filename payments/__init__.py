"""Agencies, the fee catalogue, payment orders, VietQR, bank credits and their matching."""
