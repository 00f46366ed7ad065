"""scripts/package_demo.py's account of a run's training time: the stops that
scripts/pause_training.sh logged are taken off only where they fall inside the run."""

import json


def test_only_stops_inside_the_runs_lifetime_are_taken_off_its_time(tmp_path, load_script):
    m = load_script("package_demo")
    (tmp_path / "run").mkdir()
    # an earlier run's stop (deleted and restarted since), one inside, one straddling the last save
    (tmp_path / "run.pauses").write_text("500 600 100 pytest -q\n\n1100 1200 100 eval\n1950 2050 100 w2v eval x\n")
    state = {"step": 10, "elapsed_s": 900.0, "started_at": 1000.0, "updated_at": 2000.0}
    (tmp_path / "run" / "trainer_state.json").write_text(json.dumps(state))
    got = m.run_state(tmp_path, "run")
    assert got["paused_s"] == 150 and got["elapsed_s"] == 750.0

    # a state from before started_at/updated_at existed: every logged stop counts
    del state["started_at"], state["updated_at"]
    (tmp_path / "run" / "trainer_state.json").write_text(json.dumps(state))
    got = m.run_state(tmp_path, "run")
    assert got["paused_s"] == 300 and got["elapsed_s"] == 600.0
    assert "not counting 5 min" in m.steps_line(got)

    (tmp_path / "run.pauses").unlink()  # no log: the state as it is
    assert m.run_state(tmp_path, "run") == state
