"""One virtual cluster's objects, its resourceVersion counter and its watch history. Free of I/O.

Stored objects are never mutated in place: writers store a fresh dict, so watch events and list results can hand
out references safely (the HTTP layer only serialises them).
"""

from __future__ import annotations

import builtins
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from halyard.sim.errors import ApiError

Obj = dict[str, Any]


@dataclass(slots=True)
class Event:
    rv: int
    key: str  # resource storage key, "group/plural"
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


@dataclass(eq=False, slots=True)
class Watcher:
    key: str
    namespace: str | None
    accept: Callable[[Obj], bool]
    deliver: Callable[[Event], None]
    # The last event delivered: lets a watcher tell an object leaving its selector (sent as DELETED).
    seen: set[tuple[str, str]] = field(default_factory=set)


def object_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class ObjectStore:
    """Objects by storage key and (namespace, name); every write gets the next resourceVersion."""

    def __init__(self, history: int = 200) -> None:
        self.rv = 1
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self.history: deque[Event] = deque(maxlen=history)
        self.compacted_rv = 0  # events with rv <= this are gone from history
        self.watchers: dict[str, list[Watcher]] = {}
        self.listeners: builtins.list[Callable[[Event], None]] = []

    # reads
    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get(key, {}).get((namespace, name))

    def list(self, key: str, namespace: str | None = None) -> list[Obj]:
        bucket = self.objects.get(key, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    # writes
    def put(self, key: str, obj: Obj, event_type: str) -> Obj:
        """Store ``obj`` (ADDED or MODIFIED), giving it the next resourceVersion. Returns the stored object."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.setdefault(key, {})[object_key(obj)] = obj
        self._emit(Event(self.rv, key, event_type, obj))
        return obj

    def remove(self, key: str, obj: Obj) -> Obj:
        """Remove ``obj``; the DELETED event carries its last state with a new resourceVersion."""
        bucket = self.objects.get(key, {})
        bucket.pop(object_key(obj), None)
        self.rv += 1
        gone = dict(obj)
        gone["metadata"] = dict(obj["metadata"], resourceVersion=str(self.rv))
        self._emit(Event(self.rv, key, "DELETED", gone))
        return gone

    def load(self, key: str, obj: Obj) -> None:
        """Put an object back as it was (reloading persisted state): no event, no new resourceVersion."""
        self.objects.setdefault(key, {})[object_key(obj)] = obj

    def _emit(self, event: Event) -> None:
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)
        for w in list(self.watchers.get(event.key, ())):
            deliver_filtered(w, event)
        for listener in list(self.listeners):
            listener(event)

    # watch
    def events_since(self, key: str, rv: int) -> builtins.list[Event]:
        """Events of ``key`` after ``rv``; 410 Expired when history no longer reaches back that far."""
        if rv < self.compacted_rv:
            raise ApiError(410, f"too old resource version: {rv} ({self.compacted_rv + 1})", reason="Expired")
        return [e for e in self.history if e.rv > rv and e.key == key]

    def add_watcher(self, watcher: Watcher) -> None:
        self.watchers.setdefault(watcher.key, []).append(watcher)

    def remove_watcher(self, watcher: Watcher) -> None:
        lst = self.watchers.get(watcher.key, [])
        if watcher in lst:
            lst.remove(watcher)


def deliver_filtered(w: Watcher, event: Event) -> None:
    """Deliver ``event`` as the watcher should see it, given its namespace and selectors."""
    ns, _ = object_key(event.obj)
    if w.namespace is not None and ns != w.namespace:
        return
    k = object_key(event.obj)
    matches = w.accept(event.obj)
    if event.type == "DELETED":
        if k in w.seen or matches:
            w.seen.discard(k)
            w.deliver(event)
        return
    if matches:
        kind = "ADDED" if k not in w.seen and event.type == "MODIFIED" else event.type
        w.seen.add(k)
        w.deliver(Event(event.rv, event.key, kind, event.obj) if kind != event.type else event)
    elif k in w.seen:
        # The object no longer matches the selector: to this watcher it is gone.
        w.seen.discard(k)
        w.deliver(Event(event.rv, event.key, "DELETED", event.obj))
