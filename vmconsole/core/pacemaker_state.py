"""Pacemaker's side of the cluster's state, read again in proportion to what changed.

A first read takes the whole CIB once: crm_mon computes every resource's status from that very text
while its configuration is parsed here. After that the CIB's version says what changed: nothing (the
last answer stands), the status only (a new ``num_updates``: the status section is read, a fifth of a
big cluster's CIB), or the configuration too (a new epoch: the whole CIB). Either way the new CIB is
compared piece by piece with the last one (``cib_delta``) and crm_mon is asked about the resources whose
own pieces changed, alone; a change to what all resources share asks about everything, as a first read.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from vmconsole.backends import cib, cib_delta, crm_mon
from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.domain.pacemaker_status import CrmMonSnapshot
from vmconsole.domain.primitive import PrimitiveConfig


@dataclass(frozen=True)
class PacemakerPart:
    status: CrmMonSnapshot
    primitives: dict[str, PrimitiveConfig]
    cluster_name: str | None


@dataclass(frozen=True)
class _Last:
    """The last answer, the CIB version it is of, and that CIB in the pieces the next one is compared with."""

    version: str
    part: PacemakerPart
    pieces: cib_delta.CibPieces


def _epoch(version: str) -> str:
    return version.rsplit(".", 1)[0]


class PacemakerReader:
    """Reads ``PacemakerPart`` again and again, asking crm_mon only about what changed."""

    def __init__(self, client: PacemakerClient) -> None:
        self.client = client
        self._last: _Last | None = None
        # how the last read asked crm_mon: "all", "none" or the resources asked about
        self.asked: str | frozenset[str] = "none"
        self._lock = threading.Lock()

    @property
    def version(self) -> str | None:
        """``admin_epoch.epoch.num_updates`` of the CIB as last read."""
        return self._last.version if self._last is not None else None

    @property
    def epoch(self) -> str | None:
        """``admin_epoch.epoch`` of the CIB as last read (None before any read)."""
        return _epoch(self._last.version) if self._last is not None else None

    def read(self) -> PacemakerPart:
        # one read at a time: a read the caller gave up waiting for may still be running
        with self._lock:
            return self._read()

    def _read(self) -> PacemakerPart:
        last = self._last
        if last is None:
            return self._whole(None)
        header = self.client.cib_header()
        version = cib.cib_version(header)
        if version == last.version:
            self.asked = "none"
            return last.part
        if _epoch(version) == _epoch(last.version):
            return self._status_changed(last, header)
        return self._whole(last)

    def _whole(self, last: _Last | None) -> PacemakerPart:
        """A first read, or one after a configuration change: the whole CIB."""
        text = self.client.cib_xml()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm_mon") as pool:
            # crm_mon answers while the configuration is parsed here
            asking: Future[CrmMonSnapshot] | None = None
            if last is None:
                asking = pool.submit(self.client.status, text)
            root = cib.parse_cib(text)
            new = cib_delta.cib_pieces(root)
            changed = cib_delta.changed_resources(last.pieces, new) if last is not None else None
            if last is not None and changed is None:
                asking = pool.submit(self.client.status, text)
            elif changed:
                status_root = cib_delta.status_of(root)
                subset = cib_delta.subset_cib(cib.attributes(root), new.configuration, status_root, changed)
                asking = pool.submit(self.client.status, subset)
            configuration = cib.parse_cib_configuration(root)
            snapshot = self._answer(last, changed, asking.result() if asking is not None else None)
        part = PacemakerPart(snapshot, configuration.primitives, configuration.cluster_name)
        self._last = _Last(configuration.version or "?", part, new)
        return part

    def _answer(self, last: _Last | None, changed: set[str] | None, answer: CrmMonSnapshot | None) -> CrmMonSnapshot:
        """The status after crm_mon's ``answer`` about everything (``changed`` None) or the changed resources."""
        if last is None or changed is None:
            assert answer is not None
            self.asked = "all"
            return answer
        if not changed or answer is None:
            self.asked = "none"
            return last.part.status
        self.asked = frozenset(changed)
        return crm_mon.merge_resources(last.part.status, answer, changed)

    def _status_changed(self, last: _Last, header: dict[str, str]) -> PacemakerPart:
        """A new ``num_updates`` alone: the status section, compared with the last one's."""
        old = last.pieces
        status_root = cib.parse_cib(self.client.cib_status_xml())
        if _epoch(cib.cib_version(self.client.cib_header())) != _epoch(cib.cib_version(header)):
            return self._whole(last)  # the configuration changed meanwhile: this status may be of it
        attributes = cib_delta.shared_cib_attributes(header)
        new = cib_delta.CibPieces(attributes, old.configuration, cib_delta.status_pieces(status_root))
        changed = cib_delta.changed_resources(old, new)
        if changed is None:
            answer: CrmMonSnapshot | None = self.client.status()  # the live CIB: the same or later
        elif changed:
            answer = self.client.status(cib_delta.subset_cib(header, old.configuration, status_root, changed))
        else:
            answer = None
        part = replace(last.part, status=self._answer(last, changed, answer))
        # the status read is of the header's version or a later one: the next read compares from there
        self._last = _Last(cib.cib_version(header), part, new)
        return part
