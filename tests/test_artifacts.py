"""artifacts on runs written by real wandb offline: a data-prep run logs a dataset, a training run
uses it (the use_artifact record an online run writes) and logs three model versions."""

from __future__ import annotations


def test_run_lists_logged_and_used_with_lineage(xlens):
    a = xlens("artifacts", run="train-on-digits").json
    rows = a["logged"]["rows"]
    assert [r[:5] for r in rows] == [["digits-model", "v0", "model", 1000, 1], ["digits-model", "v1", "model", 2000, 1],
                                     ["digits-model", "v2", "model", 3000, 1]]
    assert rows[2][5] == ["latest", "best"] and rows[0][5] == []
    assert a["used"]["rows"] == [["digits-small:v0", "dataset", "prepare-data"]]


def test_project_collections_and_one_collection(xlens):
    a = xlens("artifacts", project="lens-demo").json
    by = {r[0]: r for r in a["collections"]["rows"]}
    assert by["digits-small"][1:] == ["dataset", 1, "v0", by["digits-small"][4], ["latest", "clean"],
                                      ["prepare-data"], ["train-on-digits"]]
    assert by["digits-small"][4] > 3000  # the two CSV files
    v = xlens("artifacts", project="lens-demo", name="digits-small").json["versions"][0]
    assert v["produced_by"] == "prepare-data" and v["used_by"] == ["train-on-digits"]
    assert v["metadata"] == {"rows": 600, "splits": "['train', 'val']"} or v["metadata"]["rows"] == 600
    # the staged copies live in wandb's staging folder, outside the runs folder: never read
    assert v["files_on_disk"] == "not checked: staged outside the configured folders"


def test_no_artifacts_and_unknown_names(xlens):
    assert xlens("artifacts", run="sweep-01").json["artifacts"].startswith("none")
    r = xlens("artifacts", project="lens-demo", name="digits")
    assert r.is_error and "digits-small" in r.text and "digits-model" in r.text
    r = xlens("artifacts", project="lens-dmo")
    assert r.is_error and "lens-demo" in r.text
