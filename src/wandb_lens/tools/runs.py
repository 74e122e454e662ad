"""Run tools: list_projects, query_runs, describe_run."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from ..analysis.flatten import flatten, is_scalar, short
from ..errors import LensError
from . import _base

MAX_LIMIT = 200
DEFAULT_SUMMARY_COLS = 4
DEFAULT_CONFIG_COLS = 4
MAX_KEYS = 60
MAX_COLUMNS = 30  # metrics / config_keys asked for by name
ROLE_SCAN = 1000  # W&B cloud: runs fetched to resolve a summary role (summary.val) per run
_MAIN_METRIC = re.compile(r"(loss|acc|accuracy|f1|auc|bleu|rouge|perplexity|ppl|score|error|reward|map|iou)", re.I)


def run_doc(run) -> dict:
    """A run as the document filters and ordering see."""
    return {
        "id": run.id, "name": run.name, "state": run.state, "group": run.group, "sweep": run.sweep_id, "job_type": run.job_type,
        "tags": run.tags, "created_at": run.created_iso, "project": run.project, "entity": run.entity,
        "config": run.config, "summary": run.summary, "runtime": run.runtime_s, "host": run.host,
    }


def _default_metrics(runs) -> list[str]:
    counts: Counter = Counter()
    for r in runs:
        for k, v in flatten(r.summary).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_"):
                counts[k] += 1
    def rank(k: str):
        name = k.lower()
        main = 0 if _MAIN_METRIC.search(name) else 1
        val = 0 if re.search(r"(val|valid|eval|test)", name) else 1
        return (main, -counts[k], val, len(k), k)
    ranked = sorted(counts, key=rank)
    main = [k for k in ranked if _MAIN_METRIC.search(k)]
    return (main or ranked)[:DEFAULT_SUMMARY_COLS]


def _default_config(runs) -> list[str]:
    values: dict[str, set] = {}
    for r in runs:
        for k, v in flatten(r.config).items():
            if is_scalar(v):
                values.setdefault(k, set()).add(repr(v))
    differing = [k for k, vs in values.items() if len(vs) > 1]
    differing.sort(key=lambda k: (-len(values[k]), len(k), k))
    return differing[:DEFAULT_CONFIG_COLS]


def _pick(flat: dict, keys: list[str], sig: int = 5) -> dict:
    from ..compact import rnd

    return {k: rnd(flat[k], sig) if isinstance(flat[k], float) else short(flat[k]) for k in keys if k in flat}


def register(server, app) -> None:
    def list_projects() -> dict:
        if hasattr(app.runs, "project_rows"):  # W&B cloud: the entity's projects, no run listing
            rows = app.runs.project_rows()
            out = {"source": app.runs.kind, "total": len(rows), "projects": rows}
            if not rows:
                out["note"] = f"No projects found at {app.runs.describe_location()}."
            return out
        runs = app.runs.list_runs()
        projects: dict[tuple, dict] = {}
        for r in runs:
            p = projects.setdefault((r.entity, r.project), {"project": r.project, "entity": r.entity or None,
                                                             "runs": 0, "states": Counter(), "last_run": ""})
            p["runs"] += 1
            p["states"][r.state] += 1
            p["last_run"] = max(p["last_run"], r.created_iso)
        rows = [dict(p, states=dict(p["states"])) for p in projects.values()]
        rows.sort(key=lambda p: p["last_run"], reverse=True)
        out: dict[str, Any] = {"source": app.runs.kind, "total": len(rows), "runs_total": len(runs), "projects": rows}
        if not rows:
            out["note"] = f"No W&B runs found under {app.runs.describe_location()}."
        return out

    def query_runs(
        project: str | None = None,
        filters: dict | None = None,
        order: str | None = None,
        limit: int = 20,
        offset: int = 0,
        metrics: list[str] | None = None,
        config_keys: list[str] | None = None,
    ) -> dict:
        from ..analysis import run_filters as rf

        if limit < 1 or offset < 0:
            raise LensError(f"limit must be >= 1 and offset >= 0 (got limit={limit}, offset={offset}).")
        for name, keys in (("metrics", metrics), ("config_keys", config_keys)):
            if keys is not None and len(keys) > MAX_COLUMNS:
                raise LensError(f"{name} takes at most {MAX_COLUMNS} keys (got {len(keys)}).")
        notes = []
        if limit > MAX_LIMIT:
            notes.append(f"limit {limit} capped at {MAX_LIMIT}; page with offset")
            limit = MAX_LIMIT
        try:
            rf.check(filters or {})
            rf.parse_order(order)
        except rf.FilterError as exc:
            raise LensError(str(exc)) from None
        by_role = rf.references_role(filters, order)
        if hasattr(app.runs, "query"):  # the source filters, orders and pages (W&B cloud: server-side)
            if not by_role:
                total, page, sample = app.runs.query(project, filters, order, limit, offset)
                return _rows_answer(page, sample, total, offset, filters, order, metrics, config_keys, notes)
            # a role is resolved per run, which the server cannot do: it applies the role-free top-level
            # filters, the newest ROLE_SCAN of those runs are matched and ordered here
            plain = {k: v for k, v in (filters or {}).items() if not rf.references_role({k: v}, None)}
            scanned, runs, _ = app.runs.query(project, plain, None, ROLE_SCAN, 0)
            if scanned > len(runs):
                notes.append(f"roles resolved on the newest {len(runs)} of {scanned} runs")
        else:
            runs = app.runs.list_runs()
            projects = sorted({r.project for r in runs})
            if project is not None:
                if project not in projects:
                    from ..errors import suggest

                    raise LensError(suggest("project", project, projects))
                runs = [r for r in runs if r.project == project]
        docs = [(run_doc(r), r) for r in runs]
        try:
            until = rf.deadline()  # one time budget for the whole query's $regex matching
            matched = [(d, r) for d, r in docs if rf.matches(d, filters, until)]
        except rf.FilterError as exc:
            raise LensError(str(exc)) from None
        order_by = order or "-created_at"
        by_id = {id(d): r for d, r in matched}
        ordered = [by_id[id(d)] for d in rf.sort_docs([d for d, _ in matched], order_by)]
        page = ordered[offset: offset + limit]
        return _rows_answer(page, ordered[:200], len(ordered), offset, filters, order, metrics, config_keys, notes)

    def _rows_answer(page, sample, total, offset, filters, order, metrics, config_keys, notes) -> dict:
        from ..analysis import run_filters as rf

        order_by = order or "-created_at"
        asked = _referenced_fields(filters, order)
        # keys named in the filters or the order are shown by default, up to MAX_COLUMNS of them
        roles = set(rf.role_names())
        defaults = _default_metrics(page)
        asked_roles = [c for c in asked["summary"] if c in roles]
        if asked_roles:  # a role column already shows each run's own key for it
            own = {k for r in page for role, k in rf.summary_roles(r.summary).items() if role in asked_roles}
            defaults = [k for k in defaults if k not in own]
        metric_cols = list(metrics) if metrics else _merge(asked["summary"][:MAX_COLUMNS], defaults)
        config_cols = list(config_keys) if config_keys else _merge(asked["config"][:MAX_COLUMNS], _default_config(sample))
        multi = len({r.project for r in page}) > 1
        rows = []
        for r in page:
            row: dict[str, Any] = {"id": r.id}
            if r.name and r.name != r.id:
                row["name"] = r.name
            if multi:
                row["project"] = r.project
            row["state"] = r.state
            row["created_at"] = r.created_iso
            if r.group:
                row["group"] = r.group
            if r.tags:
                row["tags"] = r.tags
            cfg = _pick(flatten(r.config), config_cols)
            if cfg:
                row["config"] = cfg
            flat = flatten(r.summary)
            summ = _pick(flat, metric_cols, sig=4)
            role_cols = [c for c in metric_cols if c in roles and c not in flat]
            if role_cols:
                own = rf.summary_roles(r.summary)
                found = {c: own[c] for c in role_cols if c in own}
                for col, key in found.items():
                    summ.update(_pick({col: flat[key]}, [col], sig=4))
                if found:
                    row["role_keys"] = found
            if summ:
                row["summary"] = summ
            if r.state == "unreadable":
                row["reason"] = r.damage[0] if r.damage else "unreadable"
            elif r.damage or (r.truncated and r.state != "running"):
                row["damaged"] = True
            rows.append(row)
        same = _hoist_common(rows)
        if any("role_keys" in r for r in rows):
            notes.append("summary columns named by a role (val, train, ...) hold each run's own key for it "
                         "(role_keys)")
        out: dict[str, Any] = {
            "total": total, "returned": len(rows), "offset": offset,
            "truncated": offset + len(rows) < total, "order": order_by,
            "columns": {"summary": metric_cols, "config": config_cols},
        }
        if same:
            out["same_for_all"] = same
        out["runs"] = rows
        if metrics:
            missing = [m for m in metrics if not any(m in flatten(r.summary) or m in rw.get("role_keys", same.get(
                "role_keys", {})) for r, rw in zip(page, rows))]
            if missing:
                notes.append("not in any returned run's summary: " + ", ".join(missing[:10]))
        if notes:
            out["note"] = "; ".join(notes)
        return out

    def describe_run(run: str) -> dict:
        return describe(app, run)

    _base.add(server, list_projects, "List W&B projects found, with run counts by state.")
    _base.add(
        server, query_runs,
        "Find runs. filters: W&B/MongoDB style, e.g. {\"state\":\"finished\",\"config.lr\":{\"$lt\":0.01},"
        "\"tags\":{\"$in\":[\"x\"]},\"summary.val_loss\":{\"$lt\":1}}; ops $eq $ne $gt $gte $lt $lte $in $nin "
        "$regex $exists $and $or. order: e.g. \"-summary.val_loss\". summary.val|train|lr...: each run's own "
        "key for that role. metrics / config_keys pick columns "
        "(default: main metrics, config keys that differ).",
    )
    _base.add(
        server, describe_run,
        "One run: metadata, config, summary, and per history key its point count, step range, "
        "min/max/last; plus step-key candidates.",
    )


def _hoist_common(rows: list[dict]) -> dict:
    """Fields with one value across all (>= 3) rows are stated once instead of per row."""
    if len(rows) < 3:
        return {}
    same = {}
    for field in ("state", "group", "tags", "project", "role_keys"):
        values = [json.dumps(r.get(field), sort_keys=True) for r in rows]
        if values[0] != "null" and all(v == values[0] for v in values):
            same[field] = rows[0][field]
            for r in rows:
                del r[field]
    return same


def _referenced_fields(filters, order) -> dict[str, list[str]]:
    """config / summary keys named in the filters or the order: shown by default."""
    found: dict[str, list[str]] = {"config": [], "summary": []}

    def add(field: str) -> None:
        for prefix, kind in (("config.", "config"), ("summary_metrics.", "summary"), ("summary.", "summary")):
            if field.startswith(prefix):
                key = field[len(prefix):]
                if kind == "config" and key.endswith(".value"):
                    key = key[: -len(".value")]
                if key not in found[kind]:
                    found[kind].append(key)
                return

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("$and", "$or", "$nor") and isinstance(v, list):
                    for sub in v:
                        walk(sub)
                elif isinstance(k, str) and not k.startswith("$"):
                    add(k)

    walk(filters)
    if order:
        add(order.lstrip("+-"))
    return found


def _merge(first: list[str], rest: list[str], cap: int = 6) -> list[str]:
    out = list(first)
    for k in rest:
        if k not in out and len(out) < max(cap, len(first)):
            out.append(k)
    return out


def describe(app, run: str) -> dict:
    """The describe_run answer (also served as the wandb-lens://runs/{project}/{run_id} resource)."""
    from ..analysis.history_stats import numeric_stats
    from ..analysis.step_axis import candidates_from
    from ..sources.history import NUMERIC

    info = app.runs.get_run(run)
    index = app.runs.key_index(info) if hasattr(app.runs, "key_index") else None
    if index is not None:  # W&B cloud, history not cached: describe from the keys index, no download
        return _describe_out(info, index["rows"], index["keys"], _index_candidates(index, info), index["note"])
    hist = app.runs.history(info)
    keys: dict[str, dict] = {}
    for key in hist.columns:  # one column at a time: a lazy history reads each, then drops it
        if key in ("_runtime", "_timestamp"):
            continue
        if hist.kind(key) == NUMERIC:
            steps, values = hist.numeric(key)
            keys[key] = numeric_stats(steps, values)
            hist.facts(key)  # while the column is at hand
        else:
            col = hist.columns[key]
            steps = hist.steps[col.rows]
            keys[key] = {"n": int(len(col.rows)), "kind": col.kind}
            if len(steps):
                keys[key]["steps"] = [int(steps[0]), int(steps[-1])]
    facts = hist.all_facts([k for k in keys if hist.kind(k) == NUMERIC])  # computed above as columns were read
    out = _describe_out(info, hist.n_rows, keys, candidates_from(facts, info.metrics),
                        history_damage=hist.damage)
    if getattr(hist, "join_notes", None) and "resumed" in out:
        out["resumed"]["steps"] = hist.join_notes
    return out


def _index_candidates(index: dict, info) -> list[dict]:
    """Step-key candidates from the keys index (W&B says whether each key never decreased; only the
    last value is known, so "whole numbers" is judged on it and "not constant" is assumed)."""
    from ..analysis.step_axis import candidates_from

    facts = {key: {"mono": is_mono, "n": index["keys"][key]["n"], "varies": True,
                   "integer": isinstance(last, (int, float)) and float(last).is_integer()}
             for key, (is_mono, last) in index["monotonic"].items()}
    return candidates_from(facts, info.metrics)


def _describe_out(info, n_rows: int, keys: dict, step_keys: list, note: str | None = None,
                  history_damage: list[str] | None = None) -> dict:
    shown, families = _fold_families(keys)
    flat_cfg = {k: short(v) for k, v in flatten(info.config).items()}
    flat_sum = {k: short(v) for k, v in flatten(info.summary).items()}
    out: dict[str, Any] = {
        "run": info.ref, "id": info.id, "name": info.name, "project": info.project,
        "entity": info.entity or None, "state": info.state, "created_at": info.created_iso,
        "runtime_s": info.runtime_s, "group": info.group or None, "sweep": info.sweep_id or None, "job_type": info.job_type or None,
        "tags": info.tags or None, "notes": short(info.notes) or None, "host": info.host or None,
        "config": _cut(flat_cfg), "summary": _cut(flat_sum),
        "history": {"rows": n_rows, "keys_total": len(keys), "keys": shown},
        "step_keys": step_keys,
    }
    if info.summary_derived:
        out["summary_derived"] = "no summary in the log: last logged value of each key, as W&B shows"
    if info.segments:
        out["resumed"] = {"folders": [seg.location for seg in info.segments],
                          "note": "one run in several folders: merged in order; each folder name is a run reference"}
    if info.finish_called is False:
        out["finish_called"] = False  # ended through wandb's exit hook, not run.finish()
    if info.state == "failed" and info.exit_code is not None:
        out["exit_code"] = info.exit_code
    if note:
        out["history"]["note"] = note
    if families:
        out["history"]["families"] = families
    if info.metrics:
        out["metric_defs"] = info.metrics
    damage = list(info.damage or []) + list(history_damage or [])
    if info.truncated and info.state != "running":  # a live writer's last record is simply not whole yet
        damage.append("log ends mid-record (writer killed)")
    if damage:
        out["damage"] = damage
    if len(flat_cfg) > MAX_KEYS:
        out["config_total"] = len(flat_cfg)
    if len(flat_sum) > MAX_KEYS:
        out["summary_total"] = len(flat_sum)
    return out



def _cut(flat: dict) -> dict:
    if len(flat) <= MAX_KEYS:
        return flat
    return dict(list(flat.items())[:MAX_KEYS])


def _fold_families(keys: dict[str, dict]) -> tuple[dict, list]:
    """Many keys under one prefix (gradients/..., per-layer norms) are summarised as a family."""
    if len(keys) <= MAX_KEYS:
        return keys, []
    by_prefix: dict[str, list[str]] = {}
    for k in keys:
        if "/" in k:
            by_prefix.setdefault(k.split("/", 1)[0] + "/", []).append(k)
    big = {p: ks for p, ks in by_prefix.items() if len(ks) >= 8}
    folded = {k for ks in big.values() for k in ks}
    shown = {k: v for k, v in keys.items() if k not in folded}
    families = []
    for prefix, ks in sorted(big.items()):
        kinds = Counter(keys[k].get("kind", "numeric") for k in ks)
        families.append({"prefix": prefix, "keys": len(ks), "kinds": dict(kinds), "examples": ks[:3]})
    if len(shown) > MAX_KEYS:
        shown = dict(list(shown.items())[:MAX_KEYS])
    return shown, families
