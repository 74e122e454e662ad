"""artifacts: a run's logged and used artifacts, or a project's collections with their versions."""

from __future__ import annotations

from ..analysis.flatten import short
from ..errors import LensError, suggest
from . import _base

MAX_ROWS = 20
MAX_BYTES = 3000
LOGGED_COLS = ["name", "version", "type", "bytes", "files", "aliases", "digest"]
USED_COLS = ["name", "type", "produced_by"]
COLLECTION_COLS = ["name", "type", "versions", "latest", "bytes", "aliases", "produced_by", "used_by"]


def _catalog(app, project: str):
    reader = getattr(app.runs, "artifact_catalog", None)
    if reader is None:
        raise LensError("artifacts reads local run logs; listing W&B cloud artifacts is not supported yet.")
    return reader(project)


def _names(app, project: str) -> dict:
    return {r.id: r.name or r.id for r in app.runs.list_runs(project)}


def _scope(cat) -> dict:
    out = {"versions_note": "inferred from the local logs in logging order (W&B numbers them at upload)"} \
        if cat.versions else {}
    if cat.runs_read < cat.runs_total:
        out["runs_read"] = f"{cat.runs_read} of {cat.runs_total} (time budget): later runs' artifacts not listed"
    return out


def register(server, app) -> None:
    def artifacts(run: str | None = None, project: str | None = None, name: str | None = None) -> dict:
        return _fit(_answer(run, project, name))

    def _answer(run: str | None, project: str | None, name: str | None) -> dict:
        from ..sources.local.artifacts import files_state, resolve

        if getattr(app.runs, "kind", "") == "cloud":
            return _cloud(app, run, project, name)
        if run is not None:
            info = app.runs.get_run(run)
            project = info.project
        elif project is None:
            projects = sorted({r.project for r in app.runs.list_runs()})
            if len(projects) != 1:
                raise LensError(f"Name a run or a project. Projects ({len(projects)}): {', '.join(projects[:10])}.")
            project = projects[0]
        elif project not in {r.project for r in app.runs.list_runs()}:
            raise LensError(suggest("project", project, {r.project for r in app.runs.list_runs()}))
        cat = _catalog(app, project)
        names = _names(app, project)
        roots = getattr(app.runs, "roots", [])
        if run is not None:
            logged, used = cat.by_run.get(info.id, ([], []))
            out = {"run": info.ref, "name": info.name}
            if logged:
                out["logged"] = {"cols": LOGGED_COLS,
                                 "rows": [[a.name, a.version, a.type, a.size, a.files, a.aliases, a.digest[:12]]
                                          for a in logged[:MAX_ROWS]], "total": len(logged)}
            if used:
                rows = []
                for u in used[:MAX_ROWS]:
                    v = resolve(cat, u.name)
                    rows.append([u.name, u.type, names.get(v.run_id, v.run_id) if v else "not in these logs"])
                out["used"] = {"cols": USED_COLS, "rows": rows, "total": len(used)}
            if not logged and not used:
                out["artifacts"] = "none: this run logged and used no artifacts"
            return {**out, **_scope(cat)}
        if name is not None:
            seq = cat.versions.get(name)
            if not seq:
                raise LensError(suggest("artifact", name, set(cat.versions) | set(cat.used),
                                        where=f" in project {project!r}"))
            rows = []
            for v in seq[-MAX_ROWS:]:
                users = sorted({names.get(u.run_id, u.run_id) for u in cat.used.get(name, [])
                                if resolve(cat, u.name) is v})
                rows.append({"version": v.version, "aliases": v.aliases, "digest": v.digest[:12], "bytes": v.size,
                             "files": v.files, "produced_by": names.get(v.run_id, v.run_id), "used_by": users,
                             "metadata": {k: short(x) for k, x in list(v.metadata.items())[:6]},
                             "files_on_disk": files_state(v, roots)})
            return {"project": project, "artifact": name, "type": seq[0].type, "versions_total": len(seq),
                    "versions": rows, **_scope(cat)}
        rows = []
        for cname, seq in sorted(cat.versions.items()):
            last = seq[-1]
            producers = sorted({names.get(v.run_id, v.run_id) for v in seq})
            users = sorted({names.get(u.run_id, u.run_id) for u in cat.used.get(cname, [])})
            rows.append([cname, last.type, len(seq), last.version, last.size, last.aliases, producers[:3], users[:3]])
        unknown = sorted(set(cat.used) - set(cat.versions))
        out = {"project": project,
               "collections": {"cols": COLLECTION_COLS, "rows": rows[:MAX_ROWS], "total": len(rows)}}
        if unknown:
            out["used_not_logged_here"] = unknown[:10]
        if not rows and not unknown:
            out["collections"] = "none: no run in this project logged or used an artifact"
        return {**out, **_scope(cat)}

    _base.add(server, artifacts,
              "Artifacts: a run's logged/used ones, a project's collections (versions, aliases, size, producer, "
              "consumers), or one collection's versions (name). Cloud: project may be a wandb-registry-<name>.")


def _cloud(app, run: str | None, project: str | None, name: str | None) -> dict:
    """The same answer from W&B (sources/cloud/artifacts.py): versions, aliases and lineage as W&B states them."""
    from ..sources.cloud import artifacts as CA

    src = app.runs
    if run is not None:
        info = src.get_run(run)
        got = CA.run_artifacts(src, info, MAX_ROWS)
        (logged, n_logged), (used, n_used) = got["logged"], got["used"]
        out = {"run": info.ref, "name": info.name}
        if logged:
            out["logged"] = {"cols": LOGGED_COLS, "rows": [[v.name, v.version, v.type, v.size, v.files, v.aliases,
                                                            v.digest[:12]] for v in sorted(logged, key=lambda v: (v.name, _num(v.version)))],
                             "total": n_logged}
        home = f"{info.entity}/{info.project}"
        if used:
            out["used"] = {"cols": USED_COLS, "rows": [[(v.name if v.where == home else f"{v.where}/{v.name}")
                                                        + f":{v.version}", v.type, v.produced_by] for v in used],
                           "total": n_used}
        if not logged and not used:
            out["artifacts"] = "none: this run logged and used no artifacts"
        return out
    project = project or src.project
    if project is None:
        names = src.projects()
        try:
            names += CA.registries(src)
        except LensError:
            pass
        raise LensError(f"Name a run or a project. Projects and registries ({len(names)}): {', '.join(names[:10])}.")
    if name is not None:
        got = CA.collection_versions(src, project, name, MAX_ROWS)
        rows = [{"version": v.version, "aliases": v.aliases, "digest": v.digest[:12], "bytes": v.size, "files": v.files,
                 "produced_by": v.produced_by, "used_by": v.used_by[:10],
                 "metadata": {k: short(x) for k, x in list(v.metadata.items())[:6]}, "files_on_disk": v.files_state}
                for v in reversed(got["versions"])]  # oldest first, as the local answer
        return {"project": project, "artifact": name.rsplit("/", 1)[-1].split(":")[0], "type": got["type"],
                "versions_total": got["total"], "versions": rows, **({"note": got["note"]} if "note" in got else {})}
    got = CA.project_collections(src, project, MAX_ROWS)
    rows = []
    for c in got["rows"]:
        v = c.latest
        rows.append([c.name, c.type, c.versions, v.version if v else None, v.size if v else None,
                     v.aliases if v else [], [v.produced_by] if v and v.produced_by else [], v.used_by[:3] if v else []])
    out = {"project": project, "collections": {"cols": COLLECTION_COLS, "rows": rows, "total": got["total"]}}
    if rows:
        out["lineage_note"] = "bytes, aliases, produced_by, used_by: of each collection's latest version"
    else:
        out["collections"] = "none: no artifact collections in this project"
    return out


def _fit(out: dict) -> dict:
    """Drop the last rows of the longest list until the answer fits MAX_BYTES; say what is shown of what."""
    from ..compact import dumps

    lists = {k: (v["rows"] if isinstance(v, dict) and isinstance(v.get("rows"), list) else v)
             for k, v in out.items() if k in ("logged", "used", "collections", "versions")}
    lists = {k: v for k, v in lists.items() if isinstance(v, list)}
    totals = {k: out[k].get("total") if isinstance(out[k], dict) else out.get("versions_total") for k in lists}
    trimmed = False

    def note():
        parts = [f"{k}: {len(v)} shown of {totals[k]}" for k, v in lists.items() if totals[k] and len(v) < totals[k]]
        if parts:
            out["cut"] = "; ".join(parts) + (f" (answer kept under {MAX_BYTES} B)" if trimmed else f" (first {MAX_ROWS})")

    note()
    while lists and len(dumps(out)) > MAX_BYTES:
        key = max(lists, key=lambda k: len(dumps(lists[k])) if len(lists[k]) > 1 else -1)
        if len(lists[key]) <= 1:
            break
        lists[key].pop(0 if key == "versions" else -1)  # versions: keep the newest
        trimmed = True
        note()
    return out


def _num(version: str) -> int:
    return int(version[1:]) if version[1:].isdigit() else -1
