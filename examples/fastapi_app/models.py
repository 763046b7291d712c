"""The application's own table, mapped with SQLAlchemy's ORM."""

from __future__ import annotations

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # The chain that processes the image, started in the same transaction as the row.
    chain_id: Mapped[str | None] = mapped_column(String(64), default=None)
