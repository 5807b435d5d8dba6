"""The console's routes, one ``APIRouter`` per area (after HMA's ``blueprints/``): :mod:`.auth`
(login, logout), :mod:`.queue` (the queue), :mod:`.report` (a report, its verdict, requests for
information), :mod:`.evidence` (blurred view, reveal, one-time links, breaks) and :mod:`.admin`
(the audit log for supervisors). :func:`csadetect.console.app.create_app` includes them all."""
