"""What a run report shows, as plain data: each pipeline's builder (`genfab.report.sections`) turns the
output's listing and a few documents into these, the writer makes thumbnails and plots for them and
`genfab.report.html` renders them. Keys are relative to the run's output root."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol, overload

from genfab.api.status import ResourceStatus
from genfab.api.summary import RunSummary
from genfab.report.keyindex import KeyIndex

Facts = tuple[tuple[str, str], ...]
"""A sample's facts as (name, value) pairs, shown beside its pictures."""


@dataclass(frozen=True)
class Picture:
    """One image of a sample, as a thumbnail linking to the original."""

    key: str
    mask: str | None = None
    """Drawn over the image as a tint: a mask (255 = in)."""
    polygons: str | None = None
    """Drawn over the image as outlines: a YOLO segmentation label file (`class x1 y1 x2 y2 ...`, 0-1)."""

    @property
    def opens(self) -> str:
        """The file the thumbnail links to: the mask where one is drawn (what the column shows), else the image."""
        return self.mask or self.key


@dataclass(frozen=True)
class Row:
    """A sample: one picture (or None, not made) per gallery column, its facts, and the document its
    facts are read from (read only for the samples the report pictures)."""

    sample: str
    pictures: tuple[Picture | None, ...]
    facts: Facts = ()
    facts_key: str | None = None


class Rows(Sequence[Row]):
    """A gallery's rows, each made when asked from its sample id: a gallery of 1,000,000 samples holds
    their ids, not a million rows (the report pictures a few hundred; `samples.csv` walks them once)."""

    def __init__(self, ids: Sequence[str], make: Callable[[str], Row]) -> None:
        self.ids = ids
        self.make = make

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Row]: ...
    def __getitem__(self, i: int | slice) -> Row | Sequence[Row]:
        if isinstance(i, slice):
            return [self.make(sid) for sid in self.ids[i]]
        return self.make(self.ids[i])


@dataclass(frozen=True)
class Gallery:
    title: str
    columns: tuple[str, ...]
    rows: Sequence[Row]
    """Every sample, in order; the report pictures at most its budget of them, evenly spaced."""
    describe: Callable[[Mapping[str, Any]], Facts] | None = None
    """A row's facts from its `facts_key` document."""
    note: str = ""
    counted: bool = True
    """False for another view of samples another gallery holds (worst first by a quality figure): not
    counted as samples again, not in `samples.csv` twice."""


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Series:
    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class Plot:
    """A chart drawn with matplotlib: lines over steps, or bars over names (`x` unused, `names` set)."""

    name: str
    """The picture's file stem."""
    title: str
    kind: Literal["line", "bar"]
    series: tuple[Series, ...]
    xlabel: str = ""
    ylabel: str = ""
    names: tuple[str, ...] = ()
    log_y: bool = False


class SampleColumns(Protocol):
    """Columns `samples.csv` adds for every sample (the quality figures: `sections.quality`)."""

    names: tuple[str, ...]

    def values(self, sample: str) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Section:
    title: str
    tables: tuple[Table, ...] = ()
    plots: tuple[Plot, ...] = ()
    galleries: tuple[Gallery, ...] = ()
    notes: tuple[str, ...] = ()
    columns: tuple[SampleColumns, ...] = ()
    """Per-sample columns of `samples.csv` this section knows (every sample's quality figures)."""


@dataclass(frozen=True)
class Listing:
    """The run's output as the report sees it: every key (relative, with its size; a `KeyIndex` when
    listed, any mapping in tests), its summary and status documents, and `read` for any other small
    document (None when it is not there)."""

    keys: Mapping[str, int]
    summary: RunSummary
    status: ResourceStatus | None = None
    """The local run's status (`status.json`); None for an operator's run (its status is the resource's)."""
    read: Callable[[str], bytes | None] = field(default=lambda key: None, repr=False)
    read_many: Callable[[list[str]], dict[str, bytes]] = field(default=lambda keys: {}, repr=False)

    def stage_prefix(self, name: str) -> str | None:
        """The stage's output folder relative to the root (`data/stage_1/`; `` for the root), None
        when the summary has no such stage."""
        root = (self.summary.output_uri or "").rstrip("/")
        for stage in self.summary.stages:
            if stage.name == name:
                uri = (stage.output_uri or "").rstrip("/")
                rel = uri[len(root):].strip("/") if uri.startswith(root) else ""
                return f"{rel}/" if rel else ""
        return None

    @cached_property
    def _index(self) -> KeyIndex:
        return self.keys if isinstance(self.keys, KeyIndex) else KeyIndex.of(self.keys.items())

    def under(self, prefix: str) -> list[str]:
        """The keys under `prefix`, in order (builders ask once per sample)."""
        return self._index.under(prefix)

    def each(self, prefix: str) -> Iterator[str]:
        """The keys under `prefix`, in order, one at a time (for folders of a million samples)."""
        return self._index.each(prefix)

    def json(self, key: str) -> Any:
        """A JSON document of the output, None when missing or unreadable."""
        data = self.read(key) if key in self.keys else None
        try:
            return json.loads(data) if data is not None else None
        except (ValueError, RecursionError):  # not JSON, or nested past the parser
            return None

    def jsonl(self, key: str) -> list[dict[str, Any]]:
        """A JSON-lines document's objects (unreadable lines skipped)."""
        data = self.read(key) if key in self.keys else None
        out = []
        for line in (data or b"").decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(item, dict):
                out.append(item)
        return out
