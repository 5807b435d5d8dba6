"""The feedback's plain-Python core (DESIGN §8, Art. 83(1)(a), Art. 12(2)): EU Centre verdicts on
the provider's reports -> precision per detector, alerts, labelled examples and user notifications.

:mod:`~csadetect.feedback.verdicts` reads verdicts and reports and orders verdicts,
:mod:`~csadetect.feedback.precision` turns joined records into precision, alerts and examples,
:mod:`~csadetect.feedback.notifications` schedules the Art. 12(2) notifications. The Beam stages
that run them are in :mod:`csadetect.transforms.feedback`, the graph in
:mod:`csadetect.pipelines.feedback`.
"""
