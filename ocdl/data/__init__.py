"""Data sets, model files and checkpoints."""
from ocdl.data.datasets import (ALL_DATASETS, DATASETS, circles, make_dataset, moons, named_dataset,  # noqa: F401
                               spirals)
from ocdl.data.real import REAL_DATASETS, load_real  # noqa: F401
from ocdl.data.modelfile import (load_checkpoint, load_model, save_checkpoint, save_model,  # noqa: F401
                                 checkpoint_path)
