"""Knowledge base: entries, versions and workflow, import/export, and hybrid retrieval."""
