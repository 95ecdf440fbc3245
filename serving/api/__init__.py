"""HTTP API routers; each area owns one module exposing ``router``."""
