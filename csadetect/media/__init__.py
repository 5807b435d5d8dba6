"""Media: decoding and hashing images and videos (:mod:`.hashing`), the framing views that undo
borders and letterboxes before PDQ (:mod:`.preprocess`), the sub-images of a composite (collage cells,
picture-in-picture insets: :mod:`.regions`), a video's letterbox or pillarbox bars
(:mod:`.letterbox`), and benign synthetic pictures and videos for
the demo, tests and benchmarks (:mod:`.synth`)."""
