"""Lightning callbacks of the project (explanation callbacks live in cifake_lightning.explain)."""

from .checkpoint import BestCheckpoint
from .early_stop import EarlyStop
from .epoch_seed import EpochSeed
from .finite import FiniteGuard
from .grid_export import GridExport
from .progress import ProgressBar
from .run_info import RunInfo

__all__ = ["BestCheckpoint", "EarlyStop", "EpochSeed", "FiniteGuard", "GridExport", "ProgressBar", "RunInfo"]
