"""ResNet-ODE models: fields, lifting, forward propagation, head, losses and regularisers."""
from ocdl.models.fields import FIELDS, InnerField, OuterField, HamiltonianField  # noqa: F401
from ocdl.models.losses import mean_loss, mean_loss_grad  # noqa: F401
from ocdl.models.regularisers import regulariser, regulariser_grad  # noqa: F401
from ocdl.models.resnet import (EXPLICIT_METHODS, PARAM_KEYS, SPLITTINGS, ResNetODE,  # noqa: F401
                                exact_integrators, general_integrators, integrators_for, to_numpy, to_torch)
