"""The shapes of V2's answers, for the OpenAPI document (requests are :mod:`service.v2.request`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class V2Error(_Answer):
    """``$inference_error_response``: one message saying what is wrong and where."""

    error: str


class ServerMetadata(_Answer):
    """``$metadata_server_response``."""

    name: str
    version: str
    extensions: list[str]


class V2Liveness(_Answer):
    live: bool


class V2Readiness(_Answer):
    ready: bool


class ModelReadiness(_Answer):
    name: str
    ready: bool


class TensorMetadata(_Answer):
    """``$metadata_tensor``: ``-1`` in ``shape`` is any size (the batch)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(_Answer):
    """``$metadata_model_response``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ResponseOutput(_Answer):
    """``$response_output``: values in ``data``, or ``binary_data_size`` bytes after the JSON."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(_Answer):
    """``$inference_response``."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class ConfigTensor(_Answer):
    """A tensor in Triton's model configuration; ``dims`` leave out the batch dimension."""

    name: str
    data_type: str = Field(examples=["TYPE_UINT8", "TYPE_FP32"])
    dims: list[int]


class ModelConfig(_Answer):
    """Triton's model configuration (``GET /v2/models/{name}/config``)."""

    name: str
    platform: str
    backend: str
    max_batch_size: int
    input: list[ConfigTensor]
    output: list[ConfigTensor]


class Duration(_Answer):
    """Triton's ``$duration_stat``: how many, and their total time in nanoseconds."""

    count: int
    ns: int


class InferenceStats(_Answer):
    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration
    cache_hit: Duration
    cache_miss: Duration


class ModelStat(_Answer):
    """Triton's ``$model_stat``; ``last_inference`` is in milliseconds since the epoch."""

    name: str
    version: str
    last_inference: int
    inference_count: int
    execution_count: int
    inference_stats: InferenceStats
    batch_stats: list[dict[str, Any]]


class ModelStatistics(_Answer):
    """Triton's ``$stats_model_response``."""

    model_stats: list[ModelStat]


class RepositoryIndexRequest(BaseModel):
    """Triton's ``$repository_index_request``; an empty body is the same as ``{}``."""

    model_config = ConfigDict(extra="forbid")

    ready: bool = False
    """Only the entries that are ready."""


class RepositoryParameters(BaseModel):
    """Of Triton's load and unload parameters, the one that means something here: none of
    those that override a model's configuration or files (the model is loaded from its folder
    as it is)."""

    model_config = ConfigDict(extra="forbid")

    unload_dependents: bool | None = None
    """Triton's, for ensembles: headstart has none, so there is nothing to do."""


class RepositoryLoadRequest(BaseModel):
    """Triton's ``$repository_load_request`` and ``$repository_unload_request``; an empty body
    is the same as ``{}``."""

    model_config = ConfigDict(extra="forbid")

    parameters: RepositoryParameters | None = None


class RepositoryEntry(_Answer):
    """One entry of the model repository; ``reason`` says why an ``UNAVAILABLE`` one is."""

    name: str
    version: str
    state: str = Field(examples=["READY", "UNAVAILABLE"])
    reason: str


class RepositoryIndex(RootModel[list[RepositoryEntry]]):
    """Triton's ``$repository_index_response``."""
