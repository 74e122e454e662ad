"""Demo Weave evaluations, recorded by the real weave library into a local trace store.

One 10-row arithmetic dataset evaluated with two model functions ("calculator-v2" and
"guesser-v1") and two scorers (`exact_match`, and `numeric_format`, which raises on a
non-numeric answer, failing that row the way weave does). The models report token usage the way
LLM integrations do: an output carrying `usage` and `model`, so weave rolls tokens up.

Known answers (checked by the tests): calculator-v2 solves 9 rows (q07 is off by one) and never
errors; guesser-v1 answers "unknown" on q04 (that row errors in numeric_format), solves q01, q02,
q03, q05 and q09; nobody solves q07.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

PROJECT = "lens-demo-evals"
DATASET = [
    {"id": f"q{i + 1:02d}", "question": f"{a} {op} {b}", "expected": str(eval(f"{a} {op} {b}"))}  # noqa: S307
    for i, (a, op, b) in enumerate([(2, "+", 3), (7, "*", 6), (10, "-", 4), (9, "+", 8), (12, "*", 12),
                                    (100, "-", 58), (15, "*", 15), (81, "-", 19), (5, "+", 5), (33, "*", 3)])
]
GUESSER_RIGHT = {"q01", "q02", "q03", "q05", "q09"}
CALCULATOR_WRONG = {"q07"}
GUESSER_UNKNOWN = "q04"
MODEL = "gpt-4o-mini-2024-07-18"


def _usage(question: str, answer: str) -> dict:
    prompt = 12 + len(question.split()) * 3
    completion = 2 + len(answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _build():
    import weave

    by_question = {row["question"]: row for row in DATASET}

    @weave.op(name="calculator-v2")
    def calculator(question: str) -> dict:
        row = by_question[question]
        answer = row["expected"] if row["id"] not in CALCULATOR_WRONG else str(int(row["expected"]) + 1)
        return {"answer": answer, "usage": _usage(question, answer), "model": MODEL}

    @weave.op(name="guesser-v1")
    def guesser(question: str) -> dict:
        row = by_question[question]
        if row["id"] == GUESSER_UNKNOWN:
            answer = "unknown"
        elif row["id"] in GUESSER_RIGHT:
            answer = row["expected"]
        else:
            answer = str(int(row["expected"]) * 2 + 1)
        return {"answer": answer, "usage": _usage(question, answer), "model": MODEL}

    @weave.op
    def exact_match(expected: str, output: dict) -> dict:
        return {"correct": output["answer"].strip() == expected}

    @weave.op
    def numeric_format(output: dict) -> dict:
        text = output["answer"].strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(f"answer {text!r} is not a number")
        return {"digits": len(text.lstrip("-"))}

    return weave, [calculator, guesser], [exact_match, numeric_format]


def record(db_path: str, project: str = PROJECT, models: list[str] | None = None) -> dict[str, dict]:
    """Run the evaluations into `db_path`; returns {model name: the evaluate() summary}."""
    from .weave_local import close_local, init_local

    client = init_local(project, db_path)
    try:
        weave, model_fns, scorers = _build()
        dataset = weave.Dataset(name="arith-qa", rows=DATASET)
        results = {}
        for fn in model_fns:
            name = fn.name
            if models and name not in models:
                continue
            evaluation = weave.Evaluation(name="arith-qa-eval", dataset=dataset, scorers=scorers,
                                          evaluation_name=f"arith-qa:{name}")
            results[name] = asyncio.run(evaluation.evaluate(fn))
    finally:
        close_local(client)
    return results


def write_evals(out_dir) -> str:
    """Record the demo evaluations into `<out_dir>/traces.db` (replaced); returns its path."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "traces.db"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.remove(f"{db}{suffix}")
    # weave prints the traceback of the row that fails on purpose: keep it (and anything else weave
    # prints) off stdout, the MCP stream, and out of the demo's output
    with open(out / "weave-demo.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        record(str(db))
    return str(db)
