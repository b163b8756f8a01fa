"""The Open Inference Protocol (KServe V2 REST) beside the v1 API, on the same loaded models.

``api`` only translates HTTP; ``schema`` parses a request, ``codec`` reads and
writes tensors (JSON and the binary tensor data extension), ``validation``
checks inputs against a model's metadata, ``classification`` implements the
classification extension and ``dataplane`` resolves models and runs them.
"""
