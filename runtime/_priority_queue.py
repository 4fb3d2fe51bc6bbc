"""A pool's queue: jobs by priority (higher first, first in first out within one), found by key.

A binary heap of entries ``[-priority, order, unique number, job, key]``. Removing or re-prioritising a
job never searches the heap: its entry is marked dead in place (its job set to None) and, for a new
priority, a new entry is pushed; dead entries are skipped when they reach the top, and the heap is
rebuilt once they outnumber the live ones. So a game that re-prioritises every queued chunk every frame
pays about a microsecond per job, and cancelling a key costs only its own jobs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from ._jobs import Job, QueuePlace

Entry = list[Any]  # [-priority, order, unique number, job or None when dead, key]
_NEG, _ORDER, _UNIQUE, _JOB, _KEY = range(5)


class PriorityQueue:
    """The queue a pool's managers take jobs from (the ``JobQueue`` protocol of ``_jobs``)."""

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._by_key: dict[Hashable, list[Entry]] = {}
        self.live = 0  # how many jobs are queued: len(), without a call (read it, never set it)
        self._order = itertools.count()
        # Breaks ties between a dead entry and the live one that replaced it (same priority and order),
        # so that comparing entries never reaches the job.
        self._unique = itertools.count()
        # Jobs given back (their VM died before starting them) go first within their priority.
        self._front = itertools.count(-1, -1)

    def __len__(self) -> int:
        return self.live

    def __iter__(self) -> Iterator[Job]:
        return (entry[_JOB] for entry in self._heap if entry[_JOB] is not None)

    def push(self, job: Job, priority: float, key: Hashable | None, order: int | None = None) -> None:
        """Queue ``job``: after the jobs of its priority, or at ``order`` among them (``give_back``)."""
        entry = [-priority, next(self._order) if order is None else order, next(self._unique), job, key]
        job.queue_place = tuple.__new__(QueuePlace, (priority, key))  # (its __new__ is a Python function)
        job.queue_entry = entry
        heapq.heappush(self._heap, entry)
        self.live += 1
        if key is not None:
            self._by_key.setdefault(key, []).append(entry)

    # -- the JobQueue protocol ----------------------------------------------------------------------

    def first(self) -> Job | None:
        heap = self._heap
        while heap:
            job: Job | None = heap[0][_JOB]
            if job is not None:
                return job
            heapq.heappop(heap)
        return None

    def drop_first(self) -> None:
        entry = heapq.heappop(self._heap)
        job = entry[_JOB]
        if job is not None and entry[_KEY] is None:  # ``_forget`` written out for a job without a key
            job.queue_entry = None
            entry[_JOB] = None
            self.live -= 1
        else:
            self._forget(entry)

    def give_back(self, jobs: list[Job]) -> None:
        for job in reversed(jobs):
            self.push(job, job.queue_place.priority, job.queue_place.key, next(self._front))

    # -- finding jobs by key ------------------------------------------------------------------------

    def remove(self, key: Hashable) -> list[Job]:
        """Take every queued job of ``key`` out of the queue; return them."""
        entries = self._by_key.pop(key, [])
        jobs = []
        for entry in entries:
            job = entry[_JOB]
            if job is not None:
                entry[_JOB] = None
                job.queue_entry = None
                self.live -= 1
                jobs.append(job)
        self._compact()
        return jobs

    def reprioritize(self, new_priority: Callable[[Any], float | None]) -> list[Job]:
        """Ask ``new_priority(key)`` once per key of the queued jobs: a number moves its jobs there, None
        takes them out. Return the jobs taken out. Jobs without a key keep their place. All or nothing:
        every key is asked before anything moves, so a ``new_priority`` that raises changes nothing."""
        decided = [(key, new_priority(key)) for key in list(self._by_key)]
        removed: list[Job] = []
        moved: list[tuple[Entry, float]] = []
        for key, priority in decided:
            if priority is None:
                removed += self.remove(key)
                continue
            entries = self._by_key.get(key, [])
            moved += [(e, priority) for e in entries if e[_JOB] is not None and e[_NEG] != -priority]
        if len(moved) * max(1, len(self._heap).bit_length()) < len(self._heap):
            # A few moved: push them anew (the old entries die in place), O(log n) each.
            for entry, priority in moved:
                job, key = entry[_JOB], entry[_KEY]
                entry[_JOB] = None
                fresh = [-priority, entry[_ORDER], next(self._unique), job, key]
                job.queue_place = QueuePlace(priority, key)
                job.queue_entry = fresh
                entries = self._by_key[key]
                entries[entries.index(entry)] = fresh
                heapq.heappush(self._heap, fresh)
        elif moved:
            # Many moved: change them in place and restore the heap once, O(n) in all.
            for entry, priority in moved:
                entry[_NEG] = -priority
                entry[_JOB].queue_place = QueuePlace(priority, entry[_KEY])
            heapq.heapify(self._heap)
        self._compact()
        return removed

    def discard(self, job: Job) -> bool:
        """Take ``job`` out if it is queued (its future was cancelled); return whether it was."""
        entry = job.queue_entry
        if entry is None or entry[_JOB] is not job:
            return False
        self._forget(entry)
        self._compact()
        return True

    def take_all(self) -> list[Job]:
        """Take every job out; return them in the order they would have run."""
        jobs = []
        while (job := self.first()) is not None:
            self.drop_first()
            jobs.append(job)
        self._heap.clear()
        self._by_key.clear()
        return jobs

    def _forget(self, entry: Entry) -> None:
        job = entry[_JOB]
        if job is None:
            return
        job.queue_entry = None
        entry[_JOB] = None
        self.live -= 1
        key = entry[_KEY]
        if key is not None:
            entries = self._by_key.get(key)
            if entries is not None:
                entries.remove(entry)
                if not entries:
                    del self._by_key[key]

    def _compact(self) -> None:
        """Drop dead entries once they outnumber the live ones (keeps the heap O(live))."""
        if len(self._heap) > 2 * self.live + 64:
            self._heap = [entry for entry in self._heap if entry[_JOB] is not None]
            heapq.heapify(self._heap)
