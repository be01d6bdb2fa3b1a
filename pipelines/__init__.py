"""Reproduction pipelines: MMDetection 3 configs, job runner and the paper's tables rebuilt."""
