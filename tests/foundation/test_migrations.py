from sqlalchemy import inspect

from domain.db import make_db_engine, upgrade
from domain.models import Base


def test_upgrade_creates_every_table_and_is_idempotent(db_url):
    upgrade(db_url)
    upgrade(db_url)
    engine = make_db_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_models_match_migrations(db_url):
    """Autogenerate finds nothing to add: the migrations describe the models exactly."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(db_url)
    engine = make_db_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
