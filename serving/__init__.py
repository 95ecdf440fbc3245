"""Composition: the FastAPI app, WebSockets, the CLI and Ray deployment wiring."""
