"""Test helper: a backbone whose constructor has a bug (a ValueError that is not a config error)."""

from torch import nn


class BuggyBackbone(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        int("not a number")  # a programming error: must surface with its traceback
