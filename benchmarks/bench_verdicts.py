"""The labelled scenario suite (tests/labelled_suite.py: numpy and PyTorch trainings written through
wandb offline, each label checked on noise-free quantities while written): diagnose_run on every run
through an MCP client; prints the confusion matrix and the false-alarm rate (BENCHMARKS.md).

    .venv/bin/python benchmarks/bench_verdicts.py          # generates the suite first when not cached
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]


def main() -> None:
    import labelled_suite as S
    import suite_eval as E
    from conftest import call

    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    runs, labels = S.ensure()
    server = build_server(AppConfig(runs_dirs=[str(runs / "wandb")], cache_dir=tempfile.mkdtemp()))

    def one(name):
        r = call(server, "diagnose_run", {"run": name})
        return (None if r.is_error else r.json), len(r.text.encode())

    res = E.evaluate(one, labels)
    print(E.markdown(res))
    if "-v" in sys.argv:
        for r in res["rows"]:
            print(f"{'  ' if r['label'] == r['got'] else 'XX'} {r['run']:28s} {r['label']:10s} -> {r['got']:10s} "
                  f"{r['bytes']:5d} B  {r['why']}")


if __name__ == "__main__":
    main()
