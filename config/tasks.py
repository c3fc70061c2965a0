from celery import shared_task


@shared_task(name="config.tasks.ping")
def ping() -> str:
    """Health check: proves a worker is consuming from the broker and can answer."""
    return "pong"
