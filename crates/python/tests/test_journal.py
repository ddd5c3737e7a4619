"""Every call is recorded in the SQLite results database."""

import sqlite3


def test_rows_after_a_run(acc, model_dir):
    r = acc.accelerate_with_browser(model_dir, ["one", "two", "three"], platform="cpu")
    db = sqlite3.connect(acc.db_path)
    try:
        inferences = db.execute(
            "SELECT worker_id, backend, items, status, latency_ms, model FROM inferences WHERE model = ?",
            (r["model_dir"],),
        ).fetchall()
        requests = db.execute("SELECT status FROM requests WHERE model = ?", (r["model_dir"],)).fetchall()
        workers = db.execute("SELECT id, kind FROM workers").fetchall()
    finally:
        db.close()
    assert len(inferences) == 1
    worker_id, backend, items, status, latency_ms, _ = inferences[0]
    assert worker_id == r["worker"] and backend == "native-cpu" and items == 3 and status == "ok"
    assert 0 < latency_ms <= r["latency_ms"]
    assert requests == [("ok",)]
    assert (r["worker"], "native-cpu") in workers


def test_failures_are_recorded_too(acc, model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    try:
        acc.accelerate_with_browser(str(broken), "x", platform="cpu")
    except Exception:
        pass
    db = sqlite3.connect(acc.db_path)
    try:
        rows = db.execute("SELECT status, error FROM requests WHERE model = ?", (str(broken),)).fetchall()
    finally:
        db.close()
    assert rows and rows[0][0] == "error" and rows[0][1]
