"""Media: decoding and hashing images and videos (:mod:`.hashing`, with its results in
:mod:`.hash_results`, PDQ in :mod:`.pdq`, the conversion to 8-bit RGB in :mod:`.rgb` and video
hashing in :mod:`.video`), the framing views that undo borders and letterboxes before PDQ
(:mod:`.preprocess`), the sub-images of a composite (collage cells, picture-in-picture insets:
:mod:`.regions`), a video's letterbox or pillarbox bars (:mod:`.letterbox`), and benign synthetic
pictures and videos for the demo, tests and benchmarks (:mod:`.synth`)."""
