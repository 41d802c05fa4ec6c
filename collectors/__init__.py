"""Collectors: one sub-package per protocol, each turning a source into Readings."""
