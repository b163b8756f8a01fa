"""Load and unload models while serving, in every worker: the repository extension behind
``POST /v2/repository/models/{name}/load|unload`` and the opt-in poll of the repository.

Each worker process holds its own sessions, so a load asked of one worker is written to an
action log in a folder every worker of the server shares (gunicorn's master makes one); each
worker's :class:`Watcher` applies the actions it has not applied yet, in order, and notes the
last one it applied. The worker that took the request waits until every live worker has
applied it before it answers, so once a load has answered, every worker serves the new model.

Each worker swaps a variant in one assignment (:class:`service.runtime.ModelStore`): a request
is answered by the variant as it was before the swap or after it. A variant that fails to load
leaves what served before serving, and the repository index says why.

With ``HEADSTART_REPOSITORY_POLL_SECONDS`` set, every worker also looks at the repository's
files that often and loads what changed (a new or rebuilt variant), as Triton's poll mode does;
a variant whose folder is gone is unloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TextIO

from service.errors import LoadFailed, NotReady, ServiceError
from service.manifest import MANIFEST_FILE, ONNX_FILE, VARIANTS
from service.repository import DEFAULT_VERSION_FILE, VERSION_PATTERN
from service.runtime import ModelStore

log = logging.getLogger(__name__)

Action = Literal["load", "unload"]

TICK_S = 0.2
"""How often a worker's watcher reads the action log: how soon a load reaches every worker."""

WAIT_S = 30.0
"""How long the worker that took a load waits for the others before it answers anyway."""

_LOG = "actions.jsonl"
_APPLIED = "applied"


@dataclass(frozen=True)
class Entry:
    """One action of the log, numbered from 1 in the order it was written."""

    number: int
    action: Action
    model: str
    variant: str


class ActionLog:
    """The actions every worker applies, in a folder they share; ``None``: this process only."""

    def __init__(self, folder: Path | None, reader: str = "") -> None:
        self.folder = folder
        self.mark = str(os.getpid()) + (f"-{reader}" if reader else "")
        """This reader's mark among the applied ones: its process id (and a name, when one
        process holds more than one reader, as tests do)."""
        self._local: list[Entry] = []
        if folder is not None:
            (folder / _APPLIED).mkdir(parents=True, exist_ok=True)

    def append(self, action: Action, model: str, variant: str) -> Entry:
        """Write one action after every other; its number is one more than the last one's."""
        if self.folder is None:
            entry = Entry(len(self._local) + 1, action, model, variant)
            self._local.append(entry)
            return entry
        with self._locked() as log_file:
            number = sum(1 for _ in log_file) + 1
            entry = Entry(number, action, model, variant)
            line = {"n": number, "action": action, "model": model, "variant": variant}
            log_file.write(json.dumps(line) + "\n")
            log_file.flush()
            os.fsync(log_file.fileno())
        return entry

    def after(self, number: int) -> list[Entry]:
        """The actions numbered above ``number``, in order."""
        if self.folder is None:
            return self._local[number:]
        try:
            text = (self.folder / _LOG).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines()[number:]:
            try:
                item = json.loads(line)
            except ValueError:
                break  # a line still being written: read again at the next tick
            found.append(Entry(item["n"], item["action"], item["model"], item["variant"]))
        return found

    def mark_applied(self, number: int) -> None:
        """Note that this process has applied every action up to ``number``."""
        if self.folder is None:
            return
        mark = self.folder / _APPLIED / self.mark
        partial = mark.with_name(self.mark + ".part")
        partial.write_text(str(number), encoding="utf-8")
        partial.replace(mark)

    def behind(self, number: int) -> list[int]:
        """The live processes that have not yet applied action ``number``."""
        if self.folder is None:
            return []
        waiting = []
        for mark in (self.folder / _APPLIED).iterdir():
            pid_text = mark.name.partition("-")[0]
            if mark.suffix == ".part" or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            try:
                applied = int(mark.read_text(encoding="utf-8") or 0)
            except (OSError, ValueError):
                continue
            if applied < number and _alive(pid):
                waiting.append(pid)
        return waiting

    @contextlib.contextmanager
    def _locked(self) -> Iterator[TextIO]:
        assert self.folder is not None
        with (self.folder / _LOG).open("a+", encoding="utf-8") as log_file:
            fcntl.flock(log_file.fileno(), fcntl.LOCK_EX)
            try:
                log_file.seek(0)
                yield log_file
            finally:
                fcntl.flock(log_file.fileno(), fcntl.LOCK_UN)


def reset(folder: Path) -> None:
    """Forget every action in ``folder`` (a server starting); other files are left alone."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _LOG).unlink(missing_ok=True)
    applied = folder / _APPLIED
    if applied.is_dir():
        for mark in applied.iterdir():
            if mark.name.partition("-")[0].isdigit():
                mark.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Watcher:
    """Applies the action log (and, if asked, the repository's changes) to one process's store."""

    def __init__(self, store: ModelStore, actions: ActionLog, poll_seconds: float = 0.0) -> None:
        self.store = store
        self.actions = actions
        self.poll_seconds = poll_seconds
        self.applied = 0
        self._applying = threading.Lock()
        self._seen = _fingerprints(store.root) if poll_seconds > 0 else {}
        self._polled = time.monotonic()
        self._stopping = threading.Event()

    def start_from_log(self) -> None:
        """Catch a new process up with the actions written before it started: each variant
        as its latest action left it. The process loaded the repository as it was on disk
        moments ago, so a variant loaded since is opened again only if its files changed."""
        with self._applying:
            entries = self.actions.after(0)
            last: dict[tuple[str, str], Action] = {}
            for entry in entries:
                last[(entry.model, entry.variant)] = entry.action
            for (model, variant), action in last.items():
                if action == "unload":
                    _quietly(self.store.unload_variant, model, variant)
                else:
                    _quietly(partial(self.store.load_variant, unless_same=True), model, variant)
            self.applied = entries[-1].number if entries else 0
            self.actions.mark_applied(self.applied)

    def start(self) -> None:
        """Tick every :data:`TICK_S` seconds in a daemon thread of its own (a real thread:
        the service's gevent worker leaves ``threading`` unpatched), so that loading a
        session never holds the event loop."""
        threading.Thread(target=self._loop, name="headstart-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # a bad tick must not stop the next one
                log.exception("model repository watcher")

    def tick(self) -> None:
        """Apply the actions written since the last tick, then poll the repository if due."""
        with self._applying:
            for entry in self.actions.after(self.applied):
                self._apply(entry)
            self.actions.mark_applied(self.applied)
        if self.poll_seconds > 0 and time.monotonic() - self._polled >= self.poll_seconds:
            self.poll()

    def request(self, action: Action, model: str, variant: str) -> None:
        """A load or unload asked of this process: apply it here, log it for every other
        worker, and wait until they have applied it too, then answer as it went here.

        A load that fails is logged as well: every worker tries it, keeps what it served,
        and holds the reason for the index. An unload of what is not served (404) is not."""
        failed: LoadFailed | None = None
        with self._applying:
            # Catch up first: actions apply in the order they were logged, in every process.
            for entry in self.actions.after(self.applied):
                self._apply(entry)
            try:
                if action == "load":
                    self.store.load_variant(model, variant)
                else:
                    self.store.unload_variant(model, variant)
            except LoadFailed as exc:
                failed = exc
            entry = self.actions.append(action, model, variant)
            # Any other action logged since the catch-up was another worker's.
            newest = entry.number
            for other in self.actions.after(self.applied):
                if other.number != entry.number:
                    self._apply(other)
                newest = max(newest, other.number)
            self.applied = newest
            self.actions.mark_applied(self.applied)
        deadline = time.monotonic() + WAIT_S
        while self.actions.behind(entry.number):
            if time.monotonic() > deadline:
                waiting = ", ".join(map(str, self.actions.behind(entry.number)))
                raise NotReady(
                    f"{action}ed {model}/{variant} here, but worker(s) {waiting} have not "
                    f"applied it after {WAIT_S:g} s"
                )
            self._stopping.wait(TICK_S / 2)
        if failed is not None:
            raise failed

    def _apply(self, entry: Entry) -> None:
        if entry.action == "load":
            _quietly(self.store.load_variant, entry.model, entry.variant)
        else:
            _quietly(self.store.unload_variant, entry.model, entry.variant)
        self.applied = max(self.applied, entry.number)

    def poll(self) -> None:
        """Load every variant whose files changed or appeared; unload those that are gone."""
        self._polled = time.monotonic()
        now = _fingerprints(self.store.root)
        with self._applying:
            for key, mark in now.items():
                if self._seen.get(key) != mark:
                    _quietly(self.store.load_variant, *key)
            for key in self._seen.keys() - now.keys():
                _quietly(self.store.unload_variant, *key)
        self._seen = now


def _quietly(change: Callable[[str, str], object], model: str, variant: str) -> None:
    """Apply a change another worker (or the poll) asked for. A load that fails here failed
    there too, and the store keeps the reason for the index; an unload of a variant this
    process no longer serves has nothing to do."""
    try:
        change(model, variant)
    except ServiceError as exc:
        log.warning("model repository: %s", exc)


def _fingerprints(root: Path) -> dict[tuple[str, str], tuple[int, ...]]:
    """Each variant folder's files, of every version and its default marker: modification
    time and size. A variant with no complete version has none."""
    found: dict[tuple[str, str], tuple[int, ...]] = {}
    try:
        models = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return found
    for model in models:
        for variant in VARIANTS:
            mark = _variant_mark(model / variant)
            if mark:
                found[(model.name, variant)] = mark
    return found


def _variant_mark(folder: Path) -> tuple[int, ...]:
    """The fingerprint of one variant folder: flat, or each numbered version in order."""
    versions = [folder]
    if not (folder / MANIFEST_FILE).exists():
        try:
            numbered = [p for p in folder.iterdir() if VERSION_PATTERN.fullmatch(p.name)]
        except OSError:
            return ()
        versions = sorted(numbered, key=lambda p: int(p.name))
    mark: list[int] = []
    for version in versions:
        files = [_stat(version / name) for name in (MANIFEST_FILE, ONNX_FILE)]
        if None not in files:  # a version still being written is not there yet
            mark += [int(version.name) if version is not folder else 0]
            mark += [n for pair in files if pair is not None for n in pair]
    if mark and versions[0] is not folder:
        marker = _stat(folder / DEFAULT_VERSION_FILE)
        mark += list(marker) if marker is not None else [-1]
    return tuple(mark)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size)
