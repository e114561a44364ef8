"""Cohort sources: existing fMRIPrep derivatives, raw BIDS through fMRIPrep, imported ROI time series."""
