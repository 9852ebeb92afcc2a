"""Redis side: key shapes, the atomic apply script, the inbox, the ledger and its queries.

Knows nothing of HTTP; the billing decisions it stores come from :mod:`processor.core`.
"""
