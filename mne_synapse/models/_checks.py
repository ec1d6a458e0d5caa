"""Small helpers of the torch modules: argument checks and parameter counts."""

import numbers


def check_int(value, name):
    """Raise a ValueError unless ``value`` is a positive int (numpy integers too)."""
    # numbers.Integral also admits numpy integers (e.g. sizes read from arrays).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


def count_parameters(module, trainable_only=True):
    """Count the parameters of a module.

    Parameters
    ----------
    module : torch.nn.Module
        The module.
    trainable_only : bool
        If True, count only parameters with ``requires_grad``.

    Returns
    -------
    n : int
        The number of scalar parameters.
    """
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad or not trainable_only)
