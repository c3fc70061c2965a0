"""Beat intervals come from Django settings, not from the environment directly."""

from pathlib import Path

from config.celery import beat_schedule


def test_beat_intervals_follow_the_settings(settings, monkeypatch):
    # An exported variable no longer bypasses the settings it duplicates.
    monkeypatch.setenv("USAGE_REPORT_INTERVAL_SECONDS", "99")
    settings.USAGE_REPORT_INTERVAL_SECONDS = 2.5
    settings.USAGE_ALERT_SWEEP_SECONDS = 30
    schedule = beat_schedule()
    assert schedule["usage-report-to-stripe"]["schedule"] == 2.5
    assert schedule["usage-report-to-stripe"]["options"] == {"expires": 2.5}
    assert schedule["usage-evaluate-alerts"]["schedule"] == 30.0
    assert schedule["usage-evaluate-alerts"]["options"] == {"expires": 30.0}


def test_the_installed_schedule_uses_the_default_settings():
    from config.celery import app

    schedule = app.conf.beat_schedule
    assert schedule["usage-evaluate-alerts"]["schedule"] == 60.0  # USAGE_ALERT_SWEEP_SECONDS


def test_celery_module_reads_no_interval_from_the_environment():
    source = (Path(__file__).resolve().parents[2] / "config" / "celery.py").read_text()
    assert "os.environ.get" not in source and "getenv" not in source


def test_every_scheduled_task_is_a_registered_task():
    import billing.tasks  # noqa: F401 (registers the tasks, as the worker's autodiscovery does)
    import usage.tasks  # noqa: F401
    from config.celery import app

    names = {entry["task"] for entry in beat_schedule().values()}
    assert "usage.tasks.retry_stale_corrections" in names
    assert names <= set(app.tasks), names - set(app.tasks)
