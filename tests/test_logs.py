"""run_logs and diagnose_run's error line, on runs written by real wandb with console capture on
(one raises a KeyError, see wandb_lens.demo_extras), through an MCP client."""

from __future__ import annotations

import shutil

from conftest import call


def _folder(extras_dir, name: str):
    from wandb_lens.sources.local.source import LocalRunSource

    root = extras_dir / "wandb"
    return root / LocalRunSource([root], cache_dir=extras_dir / "folder-cache").get_run(name).location


def _server(root, tmp_path):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(runs_dirs=[str(root)], cache_dir=str(tmp_path / "cache")))


def test_failed_run_shows_its_traceback_and_the_lines_before(xlens):
    r = xlens("run_logs", run="crash-raises")
    assert not r.is_error, r.text
    a = r.json
    assert a["state"] == "failed" and a["source"] == "files/output.log"
    tb = a["traceback"]
    assert tb["error"] == "KeyError: 'label'"
    assert tb["traceback"][0] == "Traceback (most recent call last):" and tb["traceback"][-1] == "KeyError: 'label'"
    assert any("in _collate" in s for s in tb["traceback"])
    assert tb["before"][-1] == "WARNING: 3 samples had empty labels and were skipped"
    assert "tail" not in a  # the traceback is the end of the log: not sent twice
    assert len(r.text) <= 3000


def test_diagnose_failed_run_quotes_the_error_line(xlens):
    a = xlens("diagnose_run", run="crash-raises").json
    assert a["error"] == "KeyError: 'label'" and a["error_from"] == "files/output.log"
    assert "error" not in xlens("diagnose_run", run="leaky-memory").json


def test_tail_and_pattern_with_budget(xlens):
    a = xlens("run_logs", run="input-bound-gpu", tail=2).json
    assert a["tail"]["lines"] == ["step 200: loss " + a["tail"]["lines"][0].split("loss ")[1], a["tail"]["lines"][1]]
    assert a["tail"]["lines"][1].startswith("step 250: loss") and a["tail"]["lines_total"] == 6
    m = xlens("run_logs", run="crash-raises", pattern=r"step \d+:", max_matches=2).json["matches"]
    assert m["total"] == 6 and m["shown"] == 2 and m["matches"][0][0] == 1
    assert m["matches"][0][1].startswith("epoch 0 step 0:")


def test_console_from_the_log_records_when_output_log_is_gone(extras_dir, tmp_path):
    root = tmp_path / "wandb"
    shutil.copytree(_folder(extras_dir, "crash-raises"), root / "offline-run-x")
    (root / "offline-run-x" / "files" / "output.log").unlink()
    a = call(_server(root, tmp_path), "run_logs", {"run": "crash-raises"}).json
    assert a["source"] == "console records in the run log"
    assert a["traceback"]["error"] == "KeyError: 'label'"


def test_long_lines_carriage_returns_and_rank_prefixes(extras_dir, tmp_path):
    root = tmp_path / "wandb"
    shutil.copytree(_folder(extras_dir, "crash-raises"), root / "offline-run-x")
    body = "".join(f"epoch {i} {'=' * 400}\n" for i in range(3000))
    body += "10%|#   | 1/10\r50%|#####  | 5/10\r100%|##########| 10/10\n"
    body += "[rank1]: Traceback (most recent call last):\n[rank1]:   File \"train.py\", line 9, in <module>\n"
    body += "[rank1]:     step()\n[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    (root / "offline-run-x" / "files" / "output.log").write_text(body)
    srv = _server(root, tmp_path)
    a = call(srv, "run_logs", {"run": "crash-raises", "tail": 6, "traceback": False}).json
    t = a["tail"]
    assert t["lines"][1] == "100%|##########| 10/10"  # what the terminal showed
    assert t["lines"][0].startswith("epoch 2999 ") and t["lines"][0].endswith("…") and t["lines_cut"] == 1
    tb = call(srv, "run_logs", {"run": "crash-raises"}).json["traceback"]
    assert tb["error"] == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert tb["line_prefix"] == "[rank1]: " and tb["before"][-1] == "100%|##########| 10/10"


def test_run_without_console_says_so(xlens):
    a = xlens("run_logs", run="sweep-03").json
    assert a["console"].startswith("none: no files/output.log")


def test_bad_patterns_are_refused(xlens):
    for pat, needle in (("(a+)+$", "nested quantifier"), ("[", "not a valid pattern"), ("x" * 201, "longer")):
        r = xlens("run_logs", run="crash-raises", pattern=pat)
        assert r.is_error and needle in r.text, r.text
