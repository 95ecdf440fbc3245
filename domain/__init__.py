"""Shared domain model of the hotline: settings, typed events, persistence, accounts, audit and tickets."""
