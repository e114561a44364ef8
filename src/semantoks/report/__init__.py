"""The results report: probe bar charts, pretraining curves, QC histograms, an example connectome, as one HTML page."""

from semantoks.report.build import build_report, first_scan

__all__ = ["build_report", "first_scan"]
