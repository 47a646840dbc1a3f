"""Object keys and outbox paths built from templates must stay under the prefix their spec wrote literally.

A parameter such as ``-p team=../../other-bucket/x`` rendered into ``s3://reports/{{ params.team }}/`` would
otherwise move an upload out of its prefix. The rendered value is checked segment by segment, not merely
normalised: a refused value names what is wrong so the user fixes the parameter instead of finding files
somewhere unexpected.

Decisions: S3 does not URL-decode keys, but a CDN, a static website or a sync tool in front of the bucket may,
so a segment that decodes to ``.`` or ``..`` (``%2e%2e``) is refused too; so is a segment whose NFKC form is
``.`` or ``..`` (two U+FF0E fullwidth full stops), which tools that normalise Unicode would read as a parent reference.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

from reportctl.delivery.base import PermanentFailure

_TEMPLATE_MARKS = ("{{", "{%", "${")
_SHOWN = 60


def static_prefix(template: str) -> str:
    """The part of ``template`` before its first template expression: what the spec's author wrote literally."""
    cut = min((i for i in (template.find(m) for m in _TEMPLATE_MARKS) if i >= 0), default=len(template))
    return template[:cut]


def segment_problem(segment: str) -> str | None:
    """Why ``segment`` (one part between '/') cannot be part of a key or path, or None when it can."""
    if "\x00" in segment:
        return "contains a NUL character"
    if any(unicodedata.category(c) == "Cc" for c in segment):
        return "contains a control character"
    if "\\" in segment:
        return "contains a backslash, which some tools read as a path separator"
    for form in (segment, unquote(segment), unicodedata.normalize("NFKC", segment)):
        if form in (".", ".."):
            return f"has a '{segment}' segment ({'the folder above' if form == '..' else 'the same folder'})"
    return None


def contained(rendered: str, template: str, field: str) -> str:
    """``rendered`` when it stays under the literal prefix of ``template``; else a PermanentFailure naming
    ``field``, the value (shortened) and the fix. Empty segments are left to the caller, where they matter."""
    prefix = static_prefix(template)
    # the literal part may end inside a segment ("reports/team-{{ x }}"): check from that segment's start
    start = prefix.rfind("/") + 1
    problem = None
    if not rendered.startswith(prefix[:start]):
        problem = f"does not start with its literal part '{prefix[:start]}'"
    elif rendered[start:].startswith("/"):
        problem = "is an absolute path after its literal part"
    else:
        problem = next(filter(None, map(segment_problem, rendered[start:].split("/"))), None)
    if problem is None:
        return rendered
    shown = rendered if len(rendered) <= _SHOWN else rendered[: _SHOWN - 3] + "..."
    raise PermanentFailure(
        f"{field}: rendered to {shown!r}, which {problem}; it must stay under '{prefix[:start] or template}', "
        "so fix the parameter or template value that produced it"
    )


def template_problem(template: str) -> str | None:
    """What validate can see in ``template`` itself: a literal segment that escapes or is refused at run time."""
    for segment in template.split("/"):
        if any(mark in segment for mark in _TEMPLATE_MARKS):
            continue
        problem = segment_problem(segment)
        if problem:
            return f"the template {problem}; write the path without it"
    return None
