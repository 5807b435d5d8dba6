"""Model loading and handlers, training scripts, reference models and model cards."""


class ModelError(RuntimeError):
    """A model that cannot be found, loaded or used; the message is one line for the operator."""
