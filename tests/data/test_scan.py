"""data/scan.py: odd file names, symlinks and paths."""

from __future__ import annotations

import os
import shutil

import pytest

from cifake_lightning.errors import DataError, ImageDecodeError


# ------------------------------------------------------------------------------ 6. names and links
def test_file_name_that_is_not_utf8_is_named_not_a_traceback(cifake_copy, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule, PredictFolder

    src = cifake_copy / "train" / "REAL" / "0001.jpg"
    os.rename(bytes(src), bytes(cifake_copy / "train" / "REAL") + b"/caf\xe9.jpg")  # Latin-1 name
    dm = CIFAKEDataModule(root=str(cifake_copy), val_size=0, cache_dir=str(tmp_path / "c1"), progress=False)
    with pytest.raises(ImageDecodeError, match="not valid UTF-8") as e:
        dm.setup()
    assert "caf\ufffd.jpg" in str(e.value)
    pf = PredictFolder(root=str(cifake_copy / "train"), cache_dir=str(tmp_path / "c2"), progress=False)
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        pf.setup()
    assert len(pf.decoded("predict")) == 599


def test_symlink_loop_is_a_clear_error(cifake_copy, tmp_path):
    from cifake_lightning.data import ImageFolderOOD

    (cifake_copy / "test" / "REAL" / "loop").symlink_to("..")
    dm = ImageFolderOOD(root=str(cifake_copy / "test"), sources={"REAL": "real"}, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="symbolic link loop"):
        dm.setup()


def test_symlink_leaving_the_data_root_is_reported(cifake_copy, tmp_path):
    from cifake_lightning.data import ImageFolderOOD

    outside = tmp_path / "elsewhere.jpg"
    shutil.copy(cifake_copy / "test" / "REAL" / "0001.jpg", outside)
    (cifake_copy / "test" / "REAL" / "link.jpg").symlink_to(outside)
    dm = ImageFolderOOD(
        root=str(cifake_copy / "test"), sources={"REAL": "real"}, cache_dir=str(tmp_path / "c")
    )
    with pytest.warns(UserWarning, match="point outside the dataset root"):
        dm.setup()
    assert "REAL/link.jpg" in dm.decoded("test").files


def test_non_ascii_and_space_paths(cifake_root, tmp_path):
    import shutil

    from cifake_lightning.data import CIFAKEDataModule

    root = tmp_path / "données réelles" / "my CIFAKE copy"
    shutil.copytree(cifake_root, root)
    shutil.copy(root / "train" / "REAL" / "0001.jpg", root / "train" / "REAL" / "photo été (3).jpg")
    dm = CIFAKEDataModule(root=str(root), val_size=0, cache_dir=str(tmp_path / "cache é"), progress=False)
    dm.setup()
    assert "train/REAL/photo été (3).jpg" in dm.decoded("train").files
