"""Stores the gateway keeps state in between requests (the Responses API's
response store, :mod:`portway.stores.responses`)."""
