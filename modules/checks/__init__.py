"""Checks of generated data: near-duplicates, decontamination against eval sets, quality and
solver checks, and the validation flags they set."""
