"""Live agent copilot: per-call context, suggestions, category, ticket draft, 110 and sensitive alerts."""
