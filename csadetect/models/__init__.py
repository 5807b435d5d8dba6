"""The three models (image embedding, new-material classifier, grooming): one loader
(``loader``: remote copy, cache, metadata check, RunInference handler), their inference, the
reference models (``reference/``) and model cards (``cards/``). Training them is not part of the
package: see the top-level ``training/``."""


class ModelError(RuntimeError):
    """A model that cannot be found, loaded or used; the message is one line for the operator."""
