"""Data sets, model files and checkpoints."""
from ocdl.data.datasets import DATASETS, circles, make_dataset, moons, spirals  # noqa: F401
from ocdl.data.modelfile import (load_checkpoint, load_model, save_checkpoint, save_model,  # noqa: F401
                                 checkpoint_path)
