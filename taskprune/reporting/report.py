"""PruneReport: what a prune did, as a rich table, JSON or markdown."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..groups import ChannelGroup

__all__ = ["GroupChange", "PruneReport"]


GroupChange = ChannelGroup  # a report's group: `layer`, `before`, `after`, `tasks`, `note`, `serves`


@dataclass
class PruneReport:
    """Numbers of one `prune()` call. `print(report)` shows a table; `to_json()` and `to_markdown()` keep it."""

    criterion: str
    target: str
    ratio: float
    reached: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    groups: list[ChannelGroup] = field(default_factory=list)
    protected_outputs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # the request was changed, or parts of it were not possible
    call: str = ""  # how the model was called with example_inputs, e.g. "model(*example_inputs)"
    round_to: int = 1  # the channel multiple every pruned group was kept at (1: no rounding)
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)  # extract: per dropped task, what went
    notes: list[str] = field(default_factory=list)  # choices made for the user (e.g. round_to="auto"'s multiple)

    @property
    def task_attribution(self) -> dict[str, int]:
        """Number of prunable groups per kind: "shared" or the single task a group serves."""
        counts: dict[str, int] = {}
        for group in self.groups:
            counts[group.serves] = counts.get(group.serves, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = [{"layer": g.layer, "before": g.channels, "after": g.after, "tasks": list(g.tasks),
                           "note": g.kept_whole} for g in self.groups]
        data["task_attribution"] = self.task_attribution
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruneReport:
        """Rebuild from `to_dict()` output (what `taskprune.save` stores); derived keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["groups"] = [ChannelGroup(index=i, layer=g["layer"], channels=int(g["before"]), after=int(g["after"]),
                                         tasks=tuple(g["tasks"]), kept_whole=g.get("note", ""))
                            for i, g in enumerate(data.get("groups", []))]
        return cls(**values)

    def summary_rows(self) -> list[tuple[str, str]]:
        params_cut = 1 - self.params_after / self.params_before if self.params_before else 0.0
        macs_cut = 1 - self.macs_after / self.macs_before if self.macs_before else 0.0
        sizes = [("params", f"{self.params_before:,} -> {self.params_after:,} (-{params_cut:.1%})"),
                 ("MACs", f"{self.macs_before:,} -> {self.macs_after:,} (-{macs_cut:.1%})")]
        if self.criterion == "extract":  # taskprune.extract: tasks dropped, not channels
            return [("extract", self.warnings[0] if self.warnings else "-"), *sizes,
                    *[(f"removed for {task}", f"{len(entry['modules'])} modules, {entry['params']:,} params, "
                                              f"{entry['macs']:,.0f} MACs") for task, entry in self.removed.items()],
                    ("called as", self.call or "-")]
        rows = [
            ("criterion", self.criterion),
            ("target", f"{self.target}: asked {self.ratio:.1%}, reached {self.reached:.1%}"),
            ("channel multiple", str(self.round_to) if self.round_to > 1 else "1 (not rounded)"),
            *sizes,
            ("groups", ", ".join(f"{k}: {v}" for k, v in self.task_attribution.items())),
            ("protected outputs", ", ".join(self.protected_outputs) or "-"),
            ("called as", self.call or "-"),
        ]
        if self.timings:
            rows.append(("time", ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())))
        return rows + [("note", n) for n in self.notes] + [("warning", w) for w in self.warnings]

    def changed_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.after != g.before or g.note]

    def to_markdown(self) -> str:
        lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.summary_rows()]
        if self.changed_groups():
            lines += ["", "| layer | channels | serves | note |", "|---|---|---|---|"]
            lines += [f"| {g.layer} | {g.before} -> {g.after} | {g.serves} | {g.note} |"
                      for g in self.changed_groups()]
        return "\n".join(lines) + "\n"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        summary = Table(title="taskprune", show_header=False)
        for key, value in self.summary_rows():
            summary.add_row(key, value)
        if not self.changed_groups():
            return summary
        layers = Table(title="pruned groups")
        for column in ("layer", "channels", "serves", "note"):
            layers.add_column(column)
        for g in self.changed_groups():
            layers.add_row(g.layer, f"{g.before} -> {g.after}", g.serves, g.note)
        return Group(summary, layers)

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO())
        console.print(self)
        return console.export_text()
