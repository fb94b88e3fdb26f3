import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Two shared cores: one torch thread avoids spin-waiting (a 10x slowdown under load)."""
    yield
