import numpy as np
import pytest

from synthkit.errors import UsageError
from synthkit.space import ImageSpace


def test_centered_space_puts_the_central_voxel_at_the_centre():
    s = ImageSpace.centered((5, 7, 9), (2.0, 1.0, 3.0), center=(10.0, -4.0, 2.5))
    centre = s.affine_array @ np.array([2, 3, 4, 1.0])
    assert np.allclose(centre[:3], [10.0, -4.0, 2.5])
    assert s.voxel_volume == pytest.approx(6.0)
    assert s.world_coordinates().shape == (3, 5, 7, 9)


def test_space_round_trips_through_a_dict():
    s = ImageSpace.centered((4, 4, 4), 1.5)
    assert ImageSpace.from_dict(s.to_dict()) == s
    assert s.describe() == "4×4×4 at 1.5×1.5×1.5 mm"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (0, 4, 4), "spacing": (1, 1, 1)},
        {"shape": (4, 4), "spacing": (1, 1, 1)},
        {"shape": (4, 4, 4), "spacing": (1, -1, 1)},
    ],
)
def test_bad_spaces_are_refused(kwargs):
    with pytest.raises(UsageError):
        ImageSpace(affine=tuple(tuple(r) for r in np.eye(4)), **kwargs)


def test_from_dict_names_the_problem():
    with pytest.raises(UsageError, match="ImageSpace"):
        ImageSpace.from_dict({"shape": [1, 2, 3]})
