"""The predictions table: the one interface between a trained model and everything that reads its outputs.

    files -> decode cache -> device batch -> model -> PredictionTable (+ SplitManifest)
                                                       -> reports, robustness, prediction files,
                                                          explanation probes, dashboards, loggers

A `SplitManifest` is a frozen description of the images a split holds, in row order: file, source,
label and content class of every image, plus the hash of the files' contents. A `PredictionTable`
adds what one model said about them: one logit per image, sorted by row index, with the checkpoint it
came from and the perturbation applied (None for clean images). Everything after the model is a
function of tables and manifests, so it can be tested without Lightning or a data module, and results
are keyed by (checkpoint, manifest hash): scoring the best and the last checkpoint of a run, or one
checkpoint on two data sets, never writes into the same folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.split import SplitManifest
from ..errors import ConfigError, NonFiniteError
from ..models.calibration import IDENTITY, Calibration

LABEL_NAMES = {0: "real", 1: "fake", -1: ""}
LABEL_VALUES = {"real": 0, "fake": 1, "": -1}


@dataclass
class PredictionTable:
    """Per-image model outputs for one split, sorted by row index (see module docstring).

    `logit` is the model's raw output (positive = fake). `prob` applies the calibration stored with the
    table (models/calibration.py; none = the raw sigmoid), so calibrated scores flow to every consumer
    the same way; `decision` applies its validation-chosen threshold, `decision_at(0.5)` the fixed one.
    """

    index: torch.Tensor  # (N,) long, row in the manifest
    logit: torch.Tensor  # (N,) float32
    manifest: SplitManifest
    checkpoint: str | None = None
    perturbation: str | None = None
    calibration: Calibration = IDENTITY

    def __post_init__(self) -> None:
        index = self.index.long().cpu()
        order = torch.argsort(index)
        self.index, self.logit = index[order], self.logit.float().cpu()[order]
        if len(self.index) and (int(self.index[-1]) >= len(self.manifest) or int(self.index[0]) < 0):
            raise ValueError(f"row index out of range for a manifest of {len(self.manifest)} rows")
        bad = ~torch.isfinite(self.logit)
        if bool(bad.any()):  # the one gate before every metric, report and predictions file
            raise NonFiniteError(
                f"{self.checkpoint or 'the model'} gave NaN or infinite logits for {int(bad.sum())} of "
                f"{len(self)} images of {self.manifest.key}: no metric or prediction is made from them"
            )

    # ------------------------------------------------------------------ columns
    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def prob(self) -> torch.Tensor:
        return self.calibration.prob(self.logit)

    @property
    def raw_prob(self) -> torch.Tensor:
        """The uncalibrated sigmoid of the logit."""
        return torch.sigmoid(self.logit)

    @property
    def threshold(self) -> float:
        """The validation-chosen P(fake) threshold stored with the checkpoint (0.5 without one)."""
        return self.calibration.threshold

    @property
    def decision(self) -> torch.Tensor:
        """1 = fake at the validation-chosen threshold (compared on the raw logit: no rounding)."""
        return self.calibration.decide(self.logit)

    def decision_at(self, p: float) -> torch.Tensor:
        """1 = fake where the raw P(fake) >= p (0.5: the fixed threshold every paper reports)."""
        return (self.raw_prob >= p).long()

    @property
    def label(self) -> torch.Tensor:
        return self.manifest.labels[self.index]

    @property
    def source(self) -> torch.Tensor:
        return self.manifest.source[self.index]

    @property
    def content_class(self) -> torch.Tensor:
        return self.manifest.content_class[self.index]

    @property
    def files(self) -> list[str]:
        return [self.manifest.files[i] for i in self.index.tolist()]

    @property
    def source_names(self) -> list[str]:
        names = self.manifest.source_names
        return [names[s] for s in self.source.tolist()]

    def select(self, mask: torch.Tensor) -> PredictionTable:
        """The rows where `mask` (N,) is true, as a table of the same manifest."""
        return PredictionTable(
            self.index[mask],
            self.logit[mask],
            self.manifest,
            self.checkpoint,
            self.perturbation,
            self.calibration,
        )

    # ------------------------------------------------------------------ input
    @classmethod
    def of(
        cls,
        logit: torch.Tensor,
        label: torch.Tensor,
        source: torch.Tensor | None = None,
        source_names: tuple[str, ...] = ("images",),
        content_class: torch.Tensor | None = None,
        files: tuple[str, ...] | None = None,
        calibration: Calibration = IDENTITY,
        index: torch.Tensor | None = None,
        **manifest,
    ) -> PredictionTable:
        """A table of scores that did not come from a data module (scored files, tests): one manifest row
        per label, `logit` for the rows `index` names (default: all, in order); `manifest` fills the
        SplitManifest's other fields (split, data, root, ...)."""
        n = len(label)
        zeros = torch.zeros(n, dtype=torch.long)
        m = SplitManifest(
            **{"split": "predict", "data": "", "root": "", "content_hash": "", **manifest},
            files=tuple(files or (f"{i}" for i in range(n))),
            labels=label.long(),
            source=zeros if source is None else source.long(),
            content_class=zeros - 1 if content_class is None else content_class.long(),
            source_names=tuple(source_names),
        )
        return cls(torch.arange(n) if index is None else index, logit, m, calibration=calibration)

    @classmethod
    def read(cls, folder: str | Path) -> PredictionTable:
        """The table a `cifake test` result folder holds (predictions.csv and report.json): the one
        reader of results (compare, benchmarks and scripts use it). The manifest is rebuilt from the
        rows and the report's data description (pixels are not needed after the model); rows the file
        does not list keep an empty file name and label -1. Errors name the damaged file."""
        folder = Path(folder)
        report_path, csv_path = folder / "report.json", folder / "predictions.csv"
        for p in (report_path, csv_path):
            if not p.is_file():
                raise ConfigError("results", f"{p} not found: give a result folder written by `cifake test`")
        try:
            report = json.loads(report_path.read_text())
            if not isinstance(report, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
            raise ConfigError(
                "results", f"{report_path} is unreadable ({e}); test the checkpoint again"
            ) from None
        data = report.get("data") or {}
        names = list(data.get("sources") or [])
        try:
            text = csv_path.read_text()
            if text and not text.endswith("\n"):
                raise ValueError("it ends inside a row (cut short)")
            rows = [r for r in csv.DictReader(io.StringIO(text, newline="")) if r.get("logit") != ""]
            index = [int(r["index"]) for r in rows]
            for r in rows:
                if None in r.values() or None in r:  # a row cut short, or one with extra cells
                    raise ValueError(f"row {r.get('index')} does not have the header's columns")
                if r["source"] not in names:
                    names.append(r["source"])
                if r["label"] not in LABEL_VALUES:
                    raise ValueError(f"row {r['index']} has label {r['label']!r}")
            logit = torch.tensor([float(r["logit"]) for r in rows])
        except (OSError, ValueError, KeyError, TypeError) as e:  # a truncated or edited file
            raise ConfigError(
                "results", f"{csv_path} is unreadable ({type(e).__name__}: {e}); test again"
            ) from None
        n = max(index, default=-1) + 1
        files, labels = [""] * n, torch.full((n,), -1, dtype=torch.long)
        source, content_class = torch.zeros(n, dtype=torch.long), torch.full((n,), -1, dtype=torch.long)
        for i, r in zip(index, rows):
            files[i], labels[i] = r["file"], LABEL_VALUES[r["label"]]
            source[i], content_class[i] = names.index(r["source"]), int(r.get("content_class") or -1)
        kinds = data.get("kinds") or {}
        manifest = SplitManifest(
            split=str(data.get("split", "test")),
            data=str(data.get("data", "")),
            root=str(data.get("root", "")),
            files=tuple(files),
            labels=labels,
            source=source,
            content_class=content_class,
            source_names=tuple(names),
            content_hash=str(data.get("content_hash", "")),
            source_kinds=tuple(kinds.get(x, "") for x in names),
        )
        cal = report.get("calibration")
        calibration = Calibration.from_dict(cal) if isinstance(cal, dict) else IDENTITY
        return cls(torch.tensor(index), logit, manifest, report.get("checkpoint"), None, calibration)

    # ------------------------------------------------------------------ output
    def rows(self, threshold: float | None = None, extra: dict[str, list] | None = None) -> list[dict]:
        """One dict per image (the CSV's columns): index, file, source, content_class, label, logit,
        p_fake (calibrated), the decision and the P(fake) threshold it used: the table's validation-chosen
        one, or `threshold` when given (compared on the calibrated P(fake)).

        With `extra` ({column: one value per manifest row}), every manifest row is listed, the ones the
        table does not score with empty score columns (`cifake predict FILES` lists unreadable files so)."""
        m, prob = self.manifest, self.prob
        if threshold is None:
            pred, thr = self.decision.tolist(), self.threshold
        else:
            pred, thr = (prob >= threshold).long().tolist(), threshold
        # 9 digits: a float32 logit exactly
        scored = {
            row: {"logit": f"{z:.9g}", "p_fake": f"{p:.6f}", "predicted": "fake" if d else "real", "threshold": f"{thr:.6g}"}
            for row, z, p, d in zip(self.index.tolist(), self.logit.tolist(), prob.tolist(), pred)
        }  # fmt: skip
        blank = dict.fromkeys(("logit", "p_fake", "predicted", "threshold"), "")
        names, source = m.source_names, m.source.tolist()  # lists once: no tensor indexing per row
        cc, labels = m.content_class.tolist(), m.labels.tolist()
        out = []
        for row in range(len(m)) if extra is not None else self.index.tolist():
            out.append(
                {
                    "index": row,
                    "file": m.files[row],
                    "source": names[source[row]],
                    "content_class": cc[row],
                    "label": LABEL_NAMES[labels[row]],
                    **scored.get(row, blank),
                    **{k: v[row] for k, v in (extra or {}).items()},
                }
            )
        return out

    def to_csv(self, threshold: float | None = None, extra: dict[str, list] | None = None) -> str:
        """`rows(threshold, extra)` as CSV: the format of every predictions.csv."""
        rows = self.rows(threshold, extra)
        columns = [*CSV_COLUMNS, *(extra or {})]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()


CSV_COLUMNS = [
    "index",
    "file",
    "source",
    "content_class",
    "label",
    "logit",
    "p_fake",
    "predicted",
    "threshold",
]


def checkpoint_key(ckpt: str | Path | None) -> str:
    """Folder name for results of a checkpoint: `<run>/version_N/<stem>` inside a runs tree, else
    `<stem>-<hash of its absolute path>` (two files called last.ckpt never collide)."""
    if not ckpt:
        return "untrained"
    p = Path(ckpt)
    if p.parent.name == "checkpoints" and p.parent.parent.name.startswith("version_"):
        return f"{p.parents[2].name}/{p.parents[1].name}/{p.stem}"
    h = hashlib.blake2b(str(p.resolve()).encode(), digest_size=4).hexdigest()
    return f"{p.stem}-{h}"


_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """blake2b of a file's bytes (remembered per path, size and mtime: robustness passes ask again)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.blake2b(digest_size=16)
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def scoring_key(table: PredictionTable, options: dict | None = None) -> str:
    """8 hex digits naming everything besides the data that changes a result's numbers: the checkpoint
    file's bytes (a retrained last.ckpt, or a namesake from another runs tree, is another model), the
    calibration and threshold rule applied, and the options of the writer (robustness, reference
    sources, ...)."""
    ckpt = table.checkpoint
    what = {
        "checkpoint": file_digest(ckpt) if ckpt and Path(ckpt).is_file() else str(ckpt),
        "calibration": table.calibration.to_dict(),
        "options": options or {},
    }
    blob = json.dumps(what, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=4).hexdigest()


def results_folder(results_dir: str | Path, table: PredictionTable, options: dict | None = None) -> Path:
    """results/<checkpoint key>/<data key>-<scoring key>/: one folder per (checkpoint bytes, data,
    calibration, options), so a result is never replaced by one that differs from it."""
    return (
        Path(results_dir)
        / checkpoint_key(table.checkpoint)
        / f"{table.manifest.key}-{scoring_key(table, options)}"
    )


def latest_results(results_dir: str | Path, ckpt: str | Path) -> Path:
    """The most recently written result folder of a checkpoint (any data), for scripts and benchmarks."""
    base = Path(results_dir) / checkpoint_key(ckpt)
    found = [p for name in ("metrics.json", "predictions.csv") for p in base.glob(f"*/{name}")]
    found.sort(key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no results of {ckpt} under {base}")
    return found[-1].parent
