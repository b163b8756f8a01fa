"""Modules generated from ``service/grpc/protos`` by ``python -m service.grpc.generate``."""
