"""Scoring the labelled suite (tests/labelled_suite.py): confusion matrix and headline figures, for
tests/test_verdict_suite.py and benchmarks/bench_verdicts.py."""

from __future__ import annotations


VERDICTS = ("healthy", "converged", "unstable", "overfit", "plateaued", "diverged")
NO_ALARM = ("healthy", "converged")


def evaluate(call_tool, labels: dict) -> dict:
    """Diagnose every labelled run through `call_tool(name) -> (answer dict | None, bytes)`; the
    confusion matrix and the headline figures, for the tuned runs and the held-out runs apart."""
    rows = []
    for name, m in sorted(labels["runs"].items()):
        ans, size = call_tool(name)
        rows.append({"run": name, "label": m["verdict"], "got": (ans or {}).get("verdict", "error"), "bytes": size,
                     "held_out": m["held_out"], "source": m["source"], "why": m["why"]})

    def figures(rs: list[dict]) -> dict:
        n = len(rs)
        right = sum(r["label"] == r["got"] for r in rs)
        calm = [r for r in rs if r["label"] in NO_ALARM]
        alarms = [r for r in calm if r["got"] not in NO_ALARM]
        return {"runs": n, "right": right, "accuracy": right / n if n else 0.0, "no_alarm_runs": len(calm),
                "false_alarms": len(alarms), "false_alarm_rate": len(alarms) / len(calm) if calm else 0.0,
                "wrong": [f"{r['run']}: {r['label']} -> {r['got']}" for r in rs if r["label"] != r["got"]]}

    cols = list(VERDICTS) + ["error"]
    matrix = {lab: {c: 0 for c in cols} for lab in VERDICTS}
    for r in rows:
        matrix[r["label"]][r["got"] if r["got"] in cols else "error"] += 1
    return {"rows": rows, "matrix": matrix, "all": figures(rows),
            "tuned": figures([r for r in rows if not r["held_out"]]),
            "held_out": figures([r for r in rows if r["held_out"]]),
            "max_bytes": max(r["bytes"] for r in rows)}


def markdown(res: dict) -> str:
    """The confusion matrix (rows: label, columns: verdict) and the headline figures as markdown."""
    cols = [c for c in list(VERDICTS) + ["error"] if c != "error" or any(res["matrix"][r]["error"] for r in VERDICTS)]
    out = ["| label \\ verdict | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for lab in VERDICTS:
        out.append(f"| **{lab}** | " + " | ".join(str(res["matrix"][lab][c] or ".") for c in cols) + " |")
    for part in ("tuned", "held_out", "all"):
        f = res[part]
        out.append(f"\n{part.replace('_', '-')}: {f['right']}/{f['runs']} right ({f['accuracy']:.0%}); false alarms on "
                   f"healthy/converged runs: {f['false_alarms']}/{f['no_alarm_runs']} ({f['false_alarm_rate']:.0%})"
                   + (f"; wrong: {', '.join(f['wrong'])}" if f["wrong"] else ""))
    out.append(f"\nlargest diagnose_run answer: {res['max_bytes']:,} B")
    return "\n".join(out)
