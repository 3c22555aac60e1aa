"""OOD data modules and the per-source report: hand-checked metrics, odd inputs, end-to-end `cifake test`."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake_lightning.data import CombinedTestData, ImageFolderOOD, KaggleRealVsAI, TinyImageNetReal
from cifake_lightning.data.archive import extract_tar_parts
from cifake_lightning.errors import DataError


def _img(path: Path, size=(32, 32), mode="RGB", fmt=None, seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)


@pytest.fixture
def ood_tree(tmp_path) -> Path:
    root = tmp_path / "ood"
    for i in range(5):
        _img(root / "photos" / f"p{i}.jpg", seed=i)
        _img(root / "gen_a" / "nested" / f"a{i}.png", size=(64, 48), seed=10 + i)  # other sizes, nested
    _img(root / "gen_b" / "gray.png", mode="L", seed=20)
    _img(root / "gen_b" / "rgba.png", mode="RGBA", size=(100, 100), seed=21)
    _img(root / "gen_b" / "pal.gif", mode="P", fmt="GIF", seed=22)
    (root / "gen_b" / "meta.json").write_text("{}")  # metadata inside a tree is ignored
    return root


def _setup(dm):
    dm.setup("test")
    return dm.decoded("test")


def test_image_folder_ood_mixed_inputs(ood_tree, tmp_path):
    dm = ImageFolderOOD(
        root=str(ood_tree),
        sources={"photos": "real", "gen_a": "fake", "gen_b": "fake"},
        cache_dir=str(tmp_path / "c"),
        progress=False,
    )
    split = _setup(dm)
    assert len(split) == 13 and split.images.shape[1:] == (3, 32, 32)
    assert split.source_names == ["photos", "gen_a", "gen_b"] and split.labels.tolist().count(0) == 5


def test_image_folder_ood_label_errors(ood_tree, tmp_path):
    with pytest.raises(DataError, match="no label for source folder"):
        _setup(
            ImageFolderOOD(root=str(ood_tree), sources=None, cache_dir=str(tmp_path / "c"), progress=False)
        )
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        _setup(ImageFolderOOD(root=str(ood_tree), sources={"photos": "maybe"}, cache_dir=str(tmp_path / "c")))
    (ood_tree / "empty").mkdir()
    with pytest.raises(DataError, match="no images in the empty folder"):
        _setup(ImageFolderOOD(root=str(ood_tree), sources={"empty": "real"}, cache_dir=str(tmp_path / "c")))
    dm = ImageFolderOOD(
        root=str(ood_tree),
        sources={"photos": "real"},
        default_label="fake",
        cache_dir=str(tmp_path / "c"),
        progress=False,
    )
    with pytest.raises(DataError, match="no images in the empty folder"):
        _setup(dm)


def test_limit_per_source_is_seeded(ood_tree, tmp_path):
    kw = dict(
        root=str(ood_tree),
        sources={"photos": "real"},
        limit_per_source=3,
        cache_dir=str(tmp_path / "c"),
        progress=False,
    )
    a, b = _setup(ImageFolderOOD(**kw)), _setup(ImageFolderOOD(**kw, seed=5))
    assert len(a) == 3 and a.files == _setup(ImageFolderOOD(**kw)).files and a.files != b.files


def test_tinyimagenet_and_kaggle_layouts(tmp_path):
    tiny = tmp_path / "tiny"
    for i in range(6):
        _img(tiny / "tiny-imagenet-200" / "val" / "images" / f"val_{i}.JPEG", size=(64, 64), seed=i)
    split = _setup(TinyImageNetReal(root=str(tiny), n=4, cache_dir=str(tmp_path / "c"), progress=False))
    assert len(split) == 4 and split.labels.sum() == 0
    kag = tmp_path / "kaggle"
    _img(kag / "RealArt" / "RealArt" / "r.jpg", size=(300, 200))
    _img(kag / "AiArtData" / "AiArtData" / "f.png", size=(128, 128), seed=3)
    (kag / "AiArtData" / "AiArtData" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.warns(UserWarning, match="skipped"):
        split = _setup(KaggleRealVsAI(root=str(kag), cache_dir=str(tmp_path / "c"), progress=False))
    assert split.labels.tolist() == [0, 1] and len(split.skipped) == 1
    with pytest.raises(DataError, match="Tiny ImageNet not found"):
        _setup(TinyImageNetReal(root=str(tmp_path / "none"), cache_dir=str(tmp_path / "c")))


def test_combined_test_data_prefixes_sources(ood_tree, cifake_root, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule

    combo = CombinedTestData(
        [
            CIFAKEDataModule(root=str(cifake_root), val_size=0, progress=False),
            ImageFolderOOD(root=str(ood_tree), sources={"gen_a": "fake"}, progress=False),
        ]
    )
    combo.setup()
    split = combo.decoded("test")
    assert split.source_names == ["CIFAKE:REAL", "CIFAKE:FAKE", "ImageFolderOOD:gen_a"]
    assert len(split) == 105 and int(split.source.max()) == 2


def test_multi_part_archive_extracts_fully_or_partially(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(40):
            data = np.random.default_rng(i).integers(0, 256, 4000, dtype=np.uint8).tobytes()
            info = tarfile.TarInfo(f"IFv1/img{i:03d}.bin")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    cut = len(raw) // 3
    parts = []
    for k, chunk in enumerate((raw[:cut], raw[cut : 2 * cut], raw[2 * cut :])):
        p = tmp_path / f"sub.tar.gz.{k}"
        p.write_bytes(chunk)
        parts.append(p)
    n, complete = extract_tar_parts(parts[::-1], tmp_path / "all")  # order restored from suffixes
    assert (n, complete) == (40, True)
    n1, complete1 = extract_tar_parts(parts[:1], tmp_path / "first")
    assert 0 < n1 < 40 and not complete1


def test_cifake_test_with_ood_config_writes_report(demo_ckpt, ood_tree, tmp_path, monkeypatch):
    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    ckpt = demo_ckpt
    data = tmp_path / "ood.yaml"
    data.write_text(
        f"class_path: cifake_lightning.data.ImageFolderOOD\ninit_args:\n  root: {ood_tree}\n"
        "  sources: {photos: real, gen_a: fake, gen_b: fake}\n  kinds: {gen_a: diffusion, gen_b: gan}\n"
        "  progress: false\n"
    )
    main(
        [
            "test",
            "--ckpt",
            str(ckpt),
            "--data",
            str(data),
            "--report.robustness",
            "true",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    from cifake_lightning.evaluate.table import latest_results

    out = latest_results(tmp_path / "results", ckpt)
    report = json.loads((out / "report.json").read_text())
    assert [r["source"] for r in report["sources"]] == ["photos", "gen_a", "gen_b", "all"]
    assert report["sources"][-1]["n"] == 13 and set(report["robustness"]) >= {"jpeg30", "blur1.0", "scale0.5"}
    levels = [
        r["perturbation"] for r in report["robustness_all"]
    ]  # CNNDetection's grid, both classes perturbed
    assert levels[:1] == ["none"] and {"jpeg100", "jpeg30", "blur0.5", "blur3.0"} <= set(levels)
    assert all({"auroc", "ap", "real_acc", "fake_acc"} <= set(r) for r in report["robustness_all"])
    for f in ("report.md", "reliability.png", "predictions.csv", "metrics.json"):
        assert (out / f).is_file(), f
    assert len((out / "predictions.csv").read_text().splitlines()) == 14
    kinds = {r["kind"]: r for r in report["unseen"]["by_kind"]}  # one row per declared generator kind
    assert set(kinds) == {"diffusion", "gan"} and kinds["gan"]["sources"] == 1
    by_source = {r["source"]: r for r in report["unseen"]["rows"]}
    assert (
        kinds["gan"]["mean_auroc"] == by_source["gen_b"]["auroc_vs_test_real"] == kinds["gan"]["worst_auroc"]
    )
    assert "Per generator kind" in (out / "report.md").read_text()


def test_kinds_must_name_listed_sources(ood_tree):
    from cifake_lightning.errors import ConfigError

    with pytest.raises(ConfigError, match="data.kinds"):
        ImageFolderOOD(root=str(ood_tree), sources={"gen_a": "fake"}, kinds={"gen_z": "gan"})


def test_image_folder_ood_reads_cifake_classes_when_asked(cifake_root, tmp_path):
    from cifake_lightning.data.layout import cifake_content_class
    from cifake_lightning.errors import ConfigError

    kw = dict(root=str(cifake_root / "test"), sources={"REAL": "real"}, progress=False)
    plain = _setup(ImageFolderOOD(cache_dir=str(tmp_path / "a"), **kw))
    named = _setup(ImageFolderOOD(cache_dir=str(tmp_path / "a"), content_classes="cifake", **kw))
    assert (plain.content_class == -1).all()  # same cache folder, but the class parser is part of its key
    want = [cifake_content_class(Path(f).name) for f in named.files]
    assert named.content_class.tolist() == want and len(set(want)) == 10
    with pytest.raises(ConfigError, match="data.content_classes"):
        ImageFolderOOD(content_classes="imagenet", **kw)


def test_ood_numbers_become_sortable_scalars():
    """Issue 27: per-source and unseen-summary numbers go to W&B as scalars, not only as a table."""
    from cifake_lightning.evaluate.ood_report import ood_scalars

    report = {
        "sources": [
            {"source": "png/fake_sd1", "auroc": 0.61, "acc@thr": 0.1},
            {"source": "x", "auroc": float("nan")},
        ],
        "unseen": {
            "mean": {"auroc_vs_test_real": 0.6, "detected@thr": 0.05},
            "worst": {"auroc_vs_test_real": 0.4},
            "real_fpr": [{"source": "png/real", "fpr@thr": 0.02}],
            "by_kind": [{"kind": "latent diffusion", "mean_auroc": 0.61, "worst_auroc": 0.61}],
        },
    }
    s = ood_scalars(report)
    assert s["ood/png/fake_sd1/auroc"] == 0.61 and s["ood/unseen_worst_auroc"] == 0.4
    assert s["ood/png/real/fpr@thr"] == 0.02 and s["ood/kind/latent_diffusion/mean_auroc"] == 0.61
    assert "ood/x/auroc" not in s  # no NaN scalars
