"""Celery configuration for running credit_tasks standalone.

`celery -A credit_tasks worker` and `celery -A credit_tasks beat` read this module when run
from the project's root. The values come from the credit_tasks settings (environment and
.env), so broker, backend and beat interval follow REDIS_URL, CELERY_BROKER_URL,
CELERY_RESULT_BACKEND and CREDIT_CHECK_INTERVAL_MINUTES. Override any Celery setting below.
"""

from credit_tasks.celery import celery_config

globals().update(celery_config())
