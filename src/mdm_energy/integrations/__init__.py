"""Adapters to other libraries; each is imported only when used, so their packages stay optional."""
