"""A W&B sweep by id: the sweep's own record (method, state, metric name and goal from its config,
run counts), read with the GraphQL `wandb.Api().sweep()` sends (GetSweep). An unknown id gets the
project's sweep ids closest to it (GetSweeps, the query `Project.sweeps()` sends). The sweep's runs
are the project's runs filtered by `{"sweep": id}`, as `Sweep.runs` does (CloudRunSource.query)."""

from __future__ import annotations

import json

from ...errors import LensError, suggest

MAX_LISTED = 500  # sweep ids read for the closest-match list of an unknown id


def sweep_info(src, project: str | None, sweep_id: str) -> dict:
    s = src._session()
    project = src._project(project, s)

    def go():
        from wandb.apis._generated import GET_SWEEP_GQL

        data = s.api._service_api.execute_graphql(GET_SWEEP_GQL, {"entity": s.entity, "project": project,
                                                                  "name": sweep_id})
        proj = (data or {}).get("project")
        if proj is None:
            return None, None
        node = proj.get("sweep")
        return (node, None) if node else (None, _sweep_ids(s, project))

    try:
        node, ids = src._guard(go, f"reading sweep {s.entity}/{project}/{sweep_id}", s.key)
    except LensError as exc:
        raise src._project_error(exc, s, project) from None
    if node is None and ids is None:
        raise LensError(suggest("project", project, src.projects()) + f" (entity {s.entity})")
    if node is None:
        if not ids:
            raise LensError(f"No sweep {sweep_id!r} in {s.entity}/{project}: the project has no sweeps.")
        raise LensError(suggest("sweep", sweep_id, ids, where=f" in {s.entity}/{project}"))
    return describe(node)


def _sweep_ids(s, project: str) -> list[str]:
    from wandb.apis._generated import GET_SWEEPS_GQL

    ids: list[str] = []
    cursor = None
    while len(ids) < MAX_LISTED:
        data = s.api._service_api.execute_graphql(GET_SWEEPS_GQL, {"entity": s.entity, "project": project,
                                                                   "filters": "{}", "cursor": cursor, "perPage": 100})
        page = ((data or {}).get("project") or {}).get("sweeps") or {}
        ids += [e["node"]["name"] for e in page.get("edges") or [] if (e.get("node") or {}).get("name")]
        info = page.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            break
        cursor = info["endCursor"]
    return ids


def describe(node: dict) -> dict:
    """The sweep as the answer shows it: id, state, method, metric {name, goal}, run counts."""
    config = _config(node.get("config"))
    metric = config.get("metric") if isinstance(config.get("metric"), dict) else {}
    out = {"id": node.get("name"), "name": node.get("displayName") or None, "state": node.get("state"),
           "method": node.get("method") or config.get("method"),
           "metric": {k: metric[k] for k in ("name", "goal") if isinstance(metric.get(k), str)} or None,
           "runs": node.get("runCount"), "runs_expected": node.get("runCountExpected"),
           "params": sorted((config.get("parameters") or {}))[:20] if isinstance(config.get("parameters"), dict) else None,
           "created_at": node.get("createdAt")}
    return {k: v for k, v in out.items() if v is not None}


def _config(text) -> dict:
    """The sweep config (YAML as W&B stores it; JSON is YAML too)."""
    if isinstance(text, dict):
        return text
    try:
        import yaml

        doc = yaml.safe_load(text or "") if isinstance(text, str) and len(text) < 1 << 20 else None
    except Exception:
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            doc = None
    return doc if isinstance(doc, dict) else {}
