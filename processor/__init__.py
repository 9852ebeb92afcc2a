"""wa-billing: what WhatsApp Business traffic costs, from Meta's webhooks, as it happens."""

__version__ = "0.1.0"
