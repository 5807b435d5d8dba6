"""The EU Centre's review console (issue 5, ``docs/console.md``): a web application in which the
Centre's staff work through the stream of Art. 13 reports, look at the sealed evidence with
reviewer-wellness safeguards, and send verdicts back to the provider (Art. 48).

* :mod:`csadetect.console.app`: ``create_app(config)``, the FastAPI application: middleware
  (security headers), error pages, and the routers of :mod:`csadetect.console.routes`, one per
  area (auth, queue, report, evidence, admin);
* :mod:`csadetect.console.state`: the ``Console`` every route shares (settings, clock, store, keys,
  ingest, outbox, reveal links) and its lifecycle; :mod:`csadetect.console.deps`: the FastAPI
  dependencies for the session, CSRF and roles; :mod:`csadetect.console.views`: labels,
  formatting and the Jinja2 templates (a little vanilla JavaScript in ``static/``);
* :mod:`csadetect.console.storage`: the state behind one interface (users, reports and their
  versions, claims, verdict history, requests for information, sessions, outbox and the
  append-only audit log), in SQLite: staff accounts and the audit log in one file, the report
  cache in another;
* :mod:`csadetect.console.reasons`: the verdict reasons per detection type, in one place;
* :mod:`csadetect.console.auth`: argon2id passwords, login throttling, session and CSRF tokens;
* :mod:`csadetect.console.ingest`: reports from the Parquet/JSON Lines store or a Pub/Sub
  subscription, signature checks, and the outbox that delivers verdicts and requests;
* :mod:`csadetect.console.evidence`: decrypting evidence on the server, the blurred greyscale view;
* :mod:`csadetect.cli.console`: ``csadetect console`` (serve, adduser, users, audit verify,
  reset-cache).

Nothing here does I/O at import time.
"""
