"""credit_tasks: Celery tasks that watch OpenRouter credits and alert before they run out."""

from .celery import app
from .tasks import check_credits, credit_history, send_alert

__all__ = ["app", "check_credits", "credit_history", "send_alert"]
