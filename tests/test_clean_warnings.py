"""The suite's output stays free of warnings that hide real ones: numeric overflow in the analysis of
a diverged run (huge but finite grad norms) and W&B asking for a password with no terminal."""

from __future__ import annotations

import warnings

from conftest import call


def test_diagnosing_every_demo_run_overflows_nothing(demo_server, demo_ids):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        for name in demo_ids:
            r = call(demo_server, "diagnose_run", {"run": f"lens-demo/{name}"})
            assert not r.is_error, r.text
    numeric = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not numeric, numeric


def test_offline_runs_written_after_weave_is_imported_ask_for_no_password(tmp_path):
    """wandb.init starts Weave tracing when weave is imported (the trace fixtures import it) and that
    logs in: with no key and no terminal, getpass warns. The test environment (and `wandb-lens demo`)
    switch the integration off with WANDB_DISABLE_WEAVE."""
    import getpass

    import weave  # noqa: F401  (imported, as by the Weave fixtures earlier in a full run)

    from wandb_lens.demo import _init

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = _init(tmp_path, "after-weave", {"lr": 0.1})
        run.log({"loss": 1.0})
        run.finish()
    prompts = [str(w.message) for w in caught if issubclass(w.category, getpass.GetPassWarning)]
    assert not prompts, prompts
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
