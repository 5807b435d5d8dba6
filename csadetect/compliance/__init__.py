"""Compliance jobs: retention of reports and evidence (Art. 22, :mod:`.retention`), users'
complaints (Art. 34, :mod:`.complaints`) and the id-free transparency report (Art. 83,
:mod:`.transparency`)."""
