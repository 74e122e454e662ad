"""A bounded LRU of rendered PNGs, addressed as `wandb-lens://plots/<id>.png`.

The id is a keyed hash (identity.keyed_id, a per-process secret) of the requester's identity, the
request (tool + normalised arguments) and the data it was drawn from (each run's id, history row
count and last step): an identical request by the same user on unchanged data finds its image, a
run that grew gets a new one, and nobody can compute an id from public facts. Each plot keeps the
identity that made it; `get` returns it to that identity only (HTTP: one W&B key or lens token
never reads another's PNG, even with its id).
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

URI_PREFIX = "wandb-lens://plots/"


@dataclass
class Plot:
    id: str
    png: bytes
    text: dict  # the numbers shown in the image, as sent in the text block
    width: int
    height: int
    owner: str = ""  # identity.current when it was drawn

    @property
    def uri(self) -> str:
        return f"{URI_PREFIX}{self.id}.png"


def plot_id(tool: str, args: dict, data_signature, owner: str) -> str:
    from ..identity import keyed_id

    doc = json.dumps({"tool": tool, "args": args, "data": data_signature}, sort_keys=True, default=str)
    return keyed_id("plot", owner, doc)


class PlotCache:
    def __init__(self, max_items: int = 64, max_bytes: int = 48 * 2**20):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Plot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, pid: str, owner: str) -> Plot | None:
        """The plot with this id if `owner` made it; else None (as if it had never been drawn)."""
        with self._lock:
            plot = self._items.get(pid)
            if plot is None or not hmac.compare_digest(plot.owner, owner):
                return None
            if plot is not None:
                self._items.move_to_end(pid)
            return plot

    def put(self, plot: Plot) -> Plot:
        with self._lock:
            old = self._items.pop(plot.id, None)
            if old is not None:
                self._bytes -= len(old.png)
            self._items[plot.id] = plot
            self._bytes += len(plot.png)
            while self._items and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.png)
            return plot

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
