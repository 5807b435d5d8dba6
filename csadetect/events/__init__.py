"""Upload events (format: docs/events.md): :mod:`.event` parses and validates a message body
into an :class:`~csadetect.events.event.Event`, or says in one line why not (never quoting content)."""
