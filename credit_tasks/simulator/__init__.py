"""OpenRouter API simulator for tests and demos.

A real HTTP server (standard library only) that answers /api/v1/key, /auth/key, /credits, /keys,
/keys/{hash}, /workspaces and /activity with OpenRouter's response shapes, with continuous
spend, a key that loops (spends fast for a while), auto top-up, spend by day and model, and
fault injection (error statuses, bad bodies, resets, hangs). Drive it from Python or over HTTP
under /_sim/. It imports nothing from the rest of credit_tasks, so it cannot share a client bug.

    account.py   the account: balance, keys, workspaces, spend, loop, top-up
    keys.py      an API key and its /keys and /key shapes, with its day/week/month spend
    workspaces.py  a workspace and its /workspaces shape
    activity.py  the spend by day, model, key and workspace, and its /activity rows
    faults.py    the fault queue
    routes.py    the API's answers and the /_sim/ admin routes
    server.py    the HTTP server and `Simulator`, the account served over it
    command.py   `main`: the simulator as a command

The shapes it answers are held to `credit_tasks/openrouter_schema.json` by the tests; that file
sits beside the client, not in here, because it states the API that both must agree with.
"""

from .account import LIMIT_RESETS, PAGE_SIZE
from .command import DEFAULT_API_KEY, DEFAULT_MANAGEMENT_KEY, main
from .faults import API_PREFIX, FAULT_KINDS
from .server import Simulator

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_MANAGEMENT_KEY",
    "FAULT_KINDS",
    "LIMIT_RESETS",
    "PAGE_SIZE",
    "Simulator",
    "main",
]
