"""cifake-lightning: a PyTorch Lightning framework for detecting AI-generated images."""

__version__ = "0.1.0"
