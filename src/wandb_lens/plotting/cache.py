"""A bounded LRU of rendered PNGs, addressed as `wandb-lens://plots/<id>.png`.

The id is a hash of the request (tool + normalised arguments) and of the data it was drawn
from (each run's id, history row count and last step), so an identical request on unchanged
data finds its image, and a run that grew gets a new one.
"""

from __future__ import annotations

import hashlib
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

    @property
    def uri(self) -> str:
        return f"{URI_PREFIX}{self.id}.png"


def plot_id(tool: str, args: dict, data_signature) -> str:
    doc = json.dumps({"tool": tool, "args": args, "data": data_signature}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


class PlotCache:
    def __init__(self, max_items: int = 64, max_bytes: int = 48 * 2**20):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Plot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, pid: str) -> Plot | None:
        with self._lock:
            plot = self._items.get(pid)
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
