"""The per-call budget (WANDB_LENS_CALL_BUDGET_S), through an MCP client: a cold decode still
running when the budget is spent answers from the rows decoded so far and says so (`partial`), the
decode carries on in the background, and the next call is complete and equal to the answer of a
server that waited for the whole decode. No timing is asserted: a near-zero budget makes the first
answer partial whatever the machine's speed (the 300,000-step log takes seconds to decode)."""

from __future__ import annotations


from conftest import call
from test_progress import big_runs_dir  # noqa: F401  (the 300,000-step run, written once per machine)

RUN = "lens-bench/big-1m"


def _server(runs_dir, cache):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(runs_dirs=[str(runs_dir)], cache_dir=str(cache)))


def _indexed(server) -> None:
    """Wait until the listing's background index of the big run is done (no history is decoded)."""
    import time

    for _ in range(600):
        states = call(server, "list_projects", {}).json["projects"][0]["states"]
        if "indexing" not in states:
            return
        time.sleep(0.2)
    raise AssertionError(f"still indexing: {states}")


def test_budget_answers_in_part_then_whole(big_runs_dir, tmp_path, monkeypatch):  # noqa: F811
    reference = _server(big_runs_dir, tmp_path / "ref-cache")
    full_diag = call(reference, "diagnose_run", {"run": RUN}).json
    full_desc = call(reference, "describe_run", {"run": RUN}).json
    assert "partial" not in full_diag and "partial" not in full_desc

    server = _server(big_runs_dir, tmp_path / "cache")
    _indexed(server)  # the budget is for the decode here (a call waiting for an index past it: see below)
    monkeypatch.setenv("WANDB_LENS_CALL_BUDGET_S", "0.001")
    first = call(server, "diagnose_run", {"run": RUN})
    assert not first.is_error, first.text
    part = first.json["partial"]
    assert 0 < part["rows"] < part["of_rows"] == full_desc["history"]["rows"]
    assert part["steps"][0] == 0 and part["steps"][1] < part["of_last_step"]
    assert "budget" in part["why"] and "next call" in part["next"]
    assert first.json["verdict"]  # an answer from the rows it has, not an error

    monkeypatch.setenv("WANDB_LENS_CALL_BUDGET_S", "600")  # this call waits for the decode still running
    assert call(server, "diagnose_run", {"run": RUN}).json == full_diag
    assert call(server, "describe_run", {"run": RUN}).json == full_desc
    # a new process reads the cache the background decode wrote, whole
    assert call(_server(big_runs_dir, tmp_path / "cache"), "diagnose_run", {"run": RUN}).json == full_diag


def test_no_budget_note_on_a_complete_answer(lens, demo_ids, monkeypatch):
    """A tiny budget changes nothing when the history is already decoded (memory or cache)."""
    run = "lens-demo/baseline-cosine"
    whole = lens("diagnose_run", run=run).json
    monkeypatch.setenv("WANDB_LENS_CALL_BUDGET_S", "0.001")
    assert lens("diagnose_run", run=run).json == whole
    assert "partial" not in whole


def test_a_cached_run_reads_only_the_columns_a_tool_needs(big_runs_dir, tmp_path, monkeypatch):  # noqa: F811
    """diagnose_run on a cached run (a new process: nothing in memory) reads the columns it judges,
    not every column; describe_run, which sums up every key, reads each once."""
    from wandb_lens.sources import history as H

    warm = tmp_path / "cache"
    total = call(_server(big_runs_dir, warm), "describe_run", {"run": RUN}).json["history"]["keys_total"]
    read: list[int] = []
    real = H._column_from_arrow
    monkeypatch.setattr(H, "_column_from_arrow", lambda arr, kind: read.append(len(arr)) or real(arr, kind))
    assert not call(_server(big_runs_dir, warm), "diagnose_run", {"run": RUN}).is_error
    assert 0 < len(read) <= 5 < total, (len(read), total)
    read.clear()
    call(_server(big_runs_dir, warm), "describe_run", {"run": RUN})
    # every key but _step (held as the row index) once, and _timestamp once more to place system metrics
    assert len(read) == total


def test_a_call_waiting_past_its_budget_for_another_threads_index_says_so(big_runs_dir, tmp_path, monkeypatch):  # noqa: F811
    """The listing indexes a big new log in the background; a call for that run waits for it, and
    past its budget answers that the run is still being indexed (a clear error, not a timeout)."""
    server = _server(big_runs_dir, tmp_path / "cache")
    assert call(server, "list_projects", {}).json["projects"][0]["states"] == {"indexing": 1}
    monkeypatch.setenv("WANDB_LENS_CALL_BUDGET_S", "0.001")
    res = call(server, "diagnose_run", {"run": RUN})
    assert res.is_error and "still being indexed" in res.text and "ask again" in res.text, res.text
    monkeypatch.setenv("WANDB_LENS_CALL_BUDGET_S", "600")
    _indexed(server)
