"""Realistic Weave evaluations recorded by the real weave client into a local store, with the
bookkeeping the tests check the tools against (what each model and scorer did on each row).

Scenarios (one store, project `lens-scenarios`):
- `qa` (published weave.Dataset "capitals", 6 rows incl. unicode and a 100 KB value) evaluated by
  three `QAModel(model_name=...)` instances of one weave.Model subclass, with a function scorer
  (`exact`) and a class scorer (`LengthScorer`, raises on row c4):
  - alpha: right on every row but c2; trials=1
  - beta: its model raises ConnectionError on c3 (weave catches it: row descendant_error)
  - gamma: trials=3; wrong on c1 in its 2nd trial only
- `down`: a 30-row dataset where the model raises ConnectionError on every row (30 failed rows).
- `nested`: an async model whose nested op raises and is caught on every row (every row fine).
- `broken`: a model function whose argument is no dataset column: weave raises OpCallError, the
  evaluation itself ends in error.
- `killed`: a recorder subprocess SIGKILLed mid-evaluation (an evaluation that never ends).

Run as a script (`python weave_scenarios.py DB slow`) it is the recorder the test kills.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

PROJECT = "lens-scenarios"
BIG = "é" * 50_000 + "x" * 50_000  # 100 KB of characters (150 KB of UTF-8)
CAPITALS = [
    {"id": "c1", "question": "Capital of France?", "expected": "Paris"},
    {"id": "c2", "question": "Capital of Japan?", "expected": "Tokyo"},
    {"id": "c3", "question": "Capital of Côte d'Ivoire?", "expected": "Yamoussoukro"},
    {"id": "c4", "question": "Capital of Österreich?", "expected": "Wien"},
    {"id": "c5", "question": "Capital of 日本 (long context)?", "expected": "東京", "context": BIG},
    {"id": "c6", "question": "Capital of Peru?", "expected": "Lima"},
]
DOWN_ROWS = [{"id": f"d{i:02d}", "question": f"q{i}", "expected": str(i)} for i in range(30)]
# bookkeeping: (model_name, row id, trial) -> what happened
ALPHA_WRONG = {"c2"}
BETA_RAISES = {"c3"}
GAMMA_WRONG = {("c1", 2)}
SCORER_RAISES = {"c4"}  # LengthScorer raises on this row, for every model that answers it
TRIALS = {"alpha": 1, "beta": 1, "gamma": 3}


def answers() -> list[tuple[str, str, int, str | None]]:
    """(model_name, row id, trial, the model's answer or None when it raised) for the capitals evals."""
    out = []
    for m in ("alpha", "beta", "gamma"):
        for trial in range(1, TRIALS[m] + 1):
            for r in CAPITALS:
                if m == "beta" and r["id"] in BETA_RAISES:
                    out.append((m, r["id"], trial, None))
                    continue
                wrong = (m == "alpha" and r["id"] in ALPHA_WRONG) or (m == "gamma" and (r["id"], trial) in GAMMA_WRONG)
                out.append((m, r["id"], trial, "?" if wrong else r["expected"]))
    return out


def _build():
    import weave

    answers = {r["question"]: r for r in CAPITALS + DOWN_ROWS}
    seen: dict = {}

    class QAModel(weave.Model):
        model_name: str
        temperature: float = 0.0

        @weave.op
        def predict(self, question: str) -> dict:
            row = answers[question]
            if self.model_name == "down":
                raise ConnectionError(f"connection refused by llm-gateway:443 for {row['id']}\nretries exhausted")
            if self.model_name == "beta" and row["id"] in BETA_RAISES:
                raise ConnectionError("connection reset by peer")
            trial = seen[(self.model_name, row["id"])] = seen.get((self.model_name, row["id"]), 0) + 1
            wrong = (self.model_name == "alpha" and row["id"] in ALPHA_WRONG) or \
                (self.model_name == "gamma" and (row["id"], trial) in GAMMA_WRONG)
            return {"answer": "?" if wrong else row["expected"]}

    @weave.op
    def exact(expected: str, output: dict) -> dict:
        return {"correct": output["answer"] == expected}

    class LengthScorer(weave.Scorer):
        @weave.op
        def score(self, expected: str, output: dict) -> dict:
            if expected == "Wien":
                raise KeyError("no length rule for 'Wien'")
            return {"ratio": round(len(output["answer"]) / len(expected), 3)}

    @weave.op
    def lookup(question: str) -> str:
        raise TimeoutError("cache lookup timed out")

    class NestedModel(weave.Model):
        @weave.op
        async def predict(self, question: str) -> dict:
            try:
                lookup(question)
            except TimeoutError:
                pass
            await asyncio.sleep(0)
            return {"answer": answers[question]["expected"]}

    @weave.op
    def needs_prompt(prompt: str) -> dict:
        return {"answer": prompt}

    return weave, QAModel, NestedModel, exact, LengthScorer, needs_prompt


def record(db_path: str) -> dict:
    """Record every scenario except the killed one; returns {label: evaluate()'s own return value}."""
    from wandb_lens.weave_local import close_local, init_local

    client = init_local(PROJECT, db_path)
    out = {}
    try:
        weave, QAModel, NestedModel, exact, LengthScorer, needs_prompt = _build()
        capitals = weave.Dataset(name="capitals", rows=CAPITALS)
        weave.publish(capitals)
        for name in ("alpha", "beta", "gamma"):
            ev = weave.Evaluation(name="capitals-qa", dataset=capitals, scorers=[exact, LengthScorer()],
                                  trials=TRIALS[name])
            out[name] = asyncio.run(ev.evaluate(QAModel(model_name=name, temperature=0.2)))
        down = weave.Evaluation(name="down-eval", dataset=weave.Dataset(name="down-rows", rows=DOWN_ROWS),
                                scorers=[exact])
        out["down"] = asyncio.run(down.evaluate(QAModel(model_name="down")))
        nested = weave.Evaluation(name="nested-eval", dataset=weave.Dataset(name="capitals", rows=CAPITALS[:3]),
                                  scorers=[exact], evaluation_name="Überprüfung-nested")
        out["nested"] = asyncio.run(nested.evaluate(NestedModel()))
        broken = weave.Evaluation(name="broken-eval", dataset=weave.Dataset(name="prompts", rows=CAPITALS[:4]),
                                  scorers=[exact])
        try:  # the model's argument is no column of the dataset: weave raises OpCallError for the evaluation
            out["broken"] = asyncio.run(broken.evaluate(needs_prompt))
        except Exception as exc:  # noqa: BLE001  (what weave raised is the bookkeeping)
            out["broken"] = {"raised": type(exc).__name__}
    finally:
        close_local(client)
    return out


def record_killed(db_path: str, timeout: float = 60.0) -> int:
    """Start a recorder whose model is slow, SIGKILL it once 4 rows are recorded; rows recorded."""
    import sqlite3

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), *sys.path]))
    proc = subprocess.Popen([sys.executable, __file__, db_path, "slow"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    done = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM calls WHERE project_id=? AND op_short="
                                        "'Evaluation.predict_and_score' AND ended_at IS NOT NULL",
                                        (f"local/{PROJECT}-killed",)).fetchone()[0]
            except sqlite3.Error:
                continue
            if done >= 4:
                break
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return done


def _slow(db_path: str) -> None:
    from wandb_lens.weave_local import init_local

    init_local(f"{PROJECT}-killed", db_path)
    import weave

    @weave.op
    def slow_model(question: str) -> dict:
        time.sleep(0.3)
        return {"answer": question}

    @weave.op
    def exact(expected: str, output: dict) -> dict:
        return {"correct": output["answer"] == expected}

    os.environ["WEAVE_PARALLELISM"] = "1"
    rows = [{"question": f"q{i}", "expected": f"q{i}"} for i in range(200)]
    ev = weave.Evaluation(name="killed-eval", dataset=weave.Dataset(name="slow-rows", rows=rows), scorers=[exact])
    asyncio.run(ev.evaluate(slow_model))


if __name__ == "__main__" and sys.argv[2:] == ["slow"]:
    _slow(sys.argv[1])
