"""Sparkplug B (spBv1.0) for the MQTT collector: the Tahu payload schema, topics, host state.

`sparkplug_b.proto` is Eclipse Tahu's schema (EPL-2.0), vendored unchanged;
`sparkplug_b_pb2.py`/`.pyi` are generated from it (see README.md in this folder).
"""
