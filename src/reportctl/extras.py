"""Optional parts of reportctl: libraries that only some specs need are extras, installed on request.

``pip install 'reportctl[s3]'`` (boto3), ``[postgres]`` (psycopg), ``[mysql]`` (pymysql),
``[celery]`` (Celery with Redis, for ``executor: celery``), ``[encrypt]`` (pypdf, cryptography, msoffcrypto-tool
and pyzipper, for a delivery's ``encrypt``) or ``[all]``. A spec that
uses one without it fails validate and render with one line naming the extra, never an ImportError.
"""

from __future__ import annotations

from importlib.util import find_spec

EXTRAS = {
    "boto3": "s3",
    "psycopg": "postgres",
    "pymysql": "mysql",
    "celery": "celery",
    "pypdf": "encrypt",
    "cryptography": "encrypt",
    "msoffcrypto": "encrypt",
    "pyzipper": "encrypt",
}
"""The module each extra brings, by import name."""


def missing_extra(module: str, needed_by: str) -> str | None:
    """The one-line fix when ``module`` is not installed (``needed_by`` says what needs it), else None."""
    if find_spec(module) is not None:
        return None
    return f"{needed_by} needs {module}, which is not installed; pip install 'reportctl[{EXTRAS[module]}]'"
