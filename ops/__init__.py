"""Operations: backup and restore of a whole installation (database, recordings, models, secrets)."""
