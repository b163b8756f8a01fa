"""Clients nobody here wrote, against the real server: tritonclient, KServe's SDK,
Prometheus, an OpenAPI validator and a client generated from the OpenAPI document."""
