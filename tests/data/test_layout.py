import pytest

from cifake_lightning.data.layout import cifake_content_class, resolve_kaggle_root
from cifake_lightning.errors import DataError


@pytest.mark.parametrize(
    "name,cls",
    [
        ("1234.jpg", 0),
        ("1234 (2).jpg", 1),
        ("0 (10).jpg", 9),
        ("12 (7).JPG", 6),
        ("12 (11).jpg", -1),
        ("12 (1).jpg", -1),
        ("abc.jpg", -1),
        ("00001.png", 0),
    ],
)
def test_cifake_content_class(name, cls):
    assert cifake_content_class(name) == cls


def test_resolve_root_accepts_one_wrapping_folder(cifake_root, tmp_path):
    wrapper = tmp_path / "download"
    wrapper.mkdir()
    (wrapper / "inner").symlink_to(cifake_root, target_is_directory=True)
    assert resolve_kaggle_root(wrapper) == wrapper / "inner"


def test_wrong_layout_message_shows_expected_and_found(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError) as e:
        resolve_kaggle_root(tmp_path)
    msg = str(e.value)
    assert "train/REAL/" in msg and "found images/" in msg and str(tmp_path) in msg


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        resolve_kaggle_root(tmp_path / "nothing")
