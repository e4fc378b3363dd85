"""ResNet-ODE models: fields, lifting, forward propagation, head, losses and regularisers."""
from ocdl.models.activations import ACTIVATIONS, Activation, get_activation  # noqa: F401
from ocdl.models.fields import FIELDS, Field, InnerField, OuterField, HamiltonianField, get_field  # noqa: F401
from ocdl.models.losses import mean_loss, mean_loss_grad  # noqa: F401
from ocdl.models.regularisers import regulariser, regulariser_grad  # noqa: F401
from ocdl.models.resnet import (EXPLICIT_METHODS, IMPLICIT_RK_METHODS, PARAM_KEYS, SPLITTINGS, ResNetODE,  # noqa: F401
                                all_integrators, exact_integrators, general_integrators, integrators_for, to_numpy,
                                to_torch)
