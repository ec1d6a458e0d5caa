"""Small helpers of the torch modules: argument checks and parameter counts."""

import numbers


def check_int(value, name, minimum=1):
    """Raise a ValueError unless ``value`` is an int >= ``minimum`` (numpy integers too)."""
    # numbers.Integral also admits numpy integers (e.g. sizes read from arrays).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")


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
