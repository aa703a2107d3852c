"""Celery configuration for running credit_tasks standalone.

`celery -A credit_tasks worker` and `celery -A credit_tasks beat` read this module when run
from the project's root. The package's app is already configured from the credit_tasks
settings (environment and .env): broker, backend and beat interval follow REDIS_URL,
CELERY_BROKER_URL, CELERY_RESULT_BACKEND and CREDIT_CHECK_INTERVAL_MINUTES. Any Celery
setting assigned below is laid over those values and wins, for example:

    worker_prefetch_multiplier = 1
    broker_transport_options = {"visibility_timeout": 600}
"""
