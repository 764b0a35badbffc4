"""Which tables a committed transaction changed, told to whoever keeps a copy of them (in-process caches).

Every ORM write of this process is seen: flushed objects and bulk ``insert``/``update``/``delete`` statements. The
callbacks run once the transaction has committed (never for a rollback), so a reader that re-reads after being told
sees the change. Other processes' writes are not seen here: on PostgreSQL, ``notify.py`` carries them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

Callback = Callable[[], None]
_TOUCHED = "halyard.touched"


class CommitWatch:
    def __init__(self) -> None:
        self._callbacks: list[tuple[frozenset[str], Callback]] = []
        # A session class of this database's own: its events are not other databases' in the same process.
        self.session_class: type[Session] = type("WatchedSession", (Session,), {})
        event.listen(self.session_class, "after_flush", self._flushed)
        event.listen(self.session_class, "do_orm_execute", self._executed)
        event.listen(self.session_class, "after_commit", self._committed)
        event.listen(self.session_class, "after_rollback", self._rolled_back)

    def on_commit(self, tables: Iterable[str], callback: Callback) -> None:
        """Call ``callback`` after every commit that changed one of ``tables``."""
        self._callbacks.append((frozenset(tables), callback))

    def _touch(self, session: Session, tables: Iterable[str]) -> None:
        session.info.setdefault(_TOUCHED, set()).update(tables)

    def _flushed(self, session: Session, _context: Any) -> None:
        changed = [*session.new, *session.dirty, *session.deleted]
        self._touch(session, {getattr(obj, "__tablename__", "") for obj in changed})

    def _executed(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if table is not None:
                self._touch(state.session, {table.name})

    def _committed(self, session: Session) -> None:
        touched = session.info.pop(_TOUCHED, None)
        if not touched:
            return
        for tables, callback in self._callbacks:
            if tables & touched:
                callback()

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(_TOUCHED, None)
