"""Storage: SQLAlchemy models, Alembic migrations, bulk upserts and the price-cache snapshot files."""
