"""Reviewing a change to a report: what a reader would see change between two versions of a spec."""

from __future__ import annotations

from reportctl.review.diff import ReportSide, compare_reports
from reportctl.review.model import ReportDiff

__all__ = ["ReportDiff", "ReportSide", "compare_reports"]
