"""Fixtures shared by the data tests: network access fails the test."""

import socket

import pytest
from tensorflow_datasets.core.utils import gcs_utils


def _refuse_network(patch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")
    for name in ("connect", "connect_ex"):
        patch.setattr(socket.socket, name, refuse)
    for name in ("getaddrinfo", "create_connection"):
        patch.setattr(socket, name, refuse)
    for name in ("exists", "gcs_listdir", "download_gcs_dataset", "download_gcs_folder"):
        patch.setattr(gcs_utils, name, refuse)


@pytest.fixture
def offline():
    """Fails the test on any socket connection, DNS look-up or TFDS GCS access."""
    with pytest.MonkeyPatch.context() as patch:
        _refuse_network(patch)
        yield


@pytest.fixture(scope="module")
def offline_module():
    """`offline` for module-scoped fixtures (preparing a dataset once per module)."""
    with pytest.MonkeyPatch.context() as patch:
        _refuse_network(patch)
        yield
