"""Inputs: the synthetic inbox generator and landing of extracts into the lake."""
