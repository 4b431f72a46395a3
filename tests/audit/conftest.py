import pytest

from synthkit.data.phantom import default_space, write_cohort

SPACE = default_space(8.0)  # 20×28×20


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """40 phantoms at 8 mm: the real reference of the audit tests."""
    return write_cohort(tmp_path_factory.mktemp("ref"), 40, space=SPACE, seed=100, progress=False)
