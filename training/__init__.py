"""Training tools for the three reference models: synthetic, benign corpora, the training
scripts, the embedding's threshold calibration and evaluation data generators.

Run from a source checkout's root, e.g. ``python -m training.train_grooming --help`` (``make
models`` retrains all three). This package is not part of the ``csadetect`` wheel: it imports
``csadetect``, never the other way round (docs/architecture.md), and ``csadetect models train`` /
``models evaluate`` reach it only through ``csadetect.cli.models.training_tool``.

* ``grooming_corpus``, ``grooming_lang`` (Dutch, German and French phrase banks), ``train_grooming``:
  the grooming-risk model;
* ``embedding_data``, ``train_embedding``, ``calibrate_embedding``, ``evaluate_images``: the image
  embedding (its data and edits, training, threshold calibration, evaluation next to PDQ);
* ``classifier_corpus``, ``train_classifier``: the new-material classifier head;
* ``robustness_set``: the robustness benchmark's image set, also the calibration's ``dev`` split.
"""
