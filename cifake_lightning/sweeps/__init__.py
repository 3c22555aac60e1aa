"""W&B sweep files run with W&B's controller (`wandb agent`) or locally without a server (`cifake sweep local`)."""
