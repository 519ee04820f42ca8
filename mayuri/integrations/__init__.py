"""Integrations with training libraries, each imported only when used (`mayuri.integrations.transformers`)."""
