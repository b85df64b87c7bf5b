"""Telling people about conflicts: which item was changed on both sides, where each version
went, and the note a keep-both copy carries."""

from __future__ import annotations

from davsync.core.item import title
from davsync.core.plan import Action, Op, Seen
from davsync.sync.context import Context, seen


class Conflicts:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._conflicted: dict[str, Action] = {}  # uid -> its CONFLICT, to name it in reports

    def tell(self, planned: list[Action]) -> None:
        """Name each item changed on both sides and say where each version went; keep-both's
        copy is named once it exists (`copy_made`)."""
        policy, report = self.ctx.options.conflict, self.ctx.report
        for action in planned:
            if action.op is not Op.CONFLICT:
                continue
            self._conflicted[action.uid] = action
            d, s = seen(action.device), seen(action.server)
            if policy == "server-wins":
                report.conflict(self._label(d), f"{action.reason}; kept the server's version "
                                "(conflict = \"server-wins\"), it replaced this device's")
            elif policy == "device-wins":
                report.conflict(self._label(d), f"{action.reason}; kept this device's version "
                                f"(conflict = \"device-wins\"), it replaced {s.ref} on the "
                                "server")

    def copy_made(self, copy: Action, name: str, href: str) -> None:
        """keep-both's device copy exists now, as file `name` and `href` on the server."""
        original = self._conflicted.get(copy.copy_of or "")
        if original is None:
            return
        d, s = seen(original.device), seen(original.server)
        location = self.ctx.source.location
        self.ctx.report.conflict(
            self._label(d),
            f"{original.reason}; the server's version is in {location}/{d.ref} "
            f"({s.ref} on the server), this device's version is now a separate item in "
            f"{location}/{name} ({href} on the server)",
        )

    def note(self, action: Action) -> str:
        """What a keep-both copy says about itself (a NOTE line)."""
        when = self.ctx.now().strftime("%Y-%m-%d %H:%M UTC")
        return (f"davsync: conflicting copy of {action.uid}, kept on {when}: this is "
                f"{self.ctx.options.device_label}'s version ({action.reason}); the other "
                "version kept the original")

    def _label(self, item: Seen) -> str:
        """A device item as people know it: its file and its FN or SUMMARY."""
        what = title(item.item)
        where = self.ctx.device_path(item.ref)
        return f"{where} ({what})" if what else where
