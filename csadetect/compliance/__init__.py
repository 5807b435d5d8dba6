"""Compliance jobs: retention of reports and evidence (Art. 22, :mod:`.retention`; its file handling,
holds and run bookkeeping in :mod:`.retention_files`, :mod:`.retention_holds`, :mod:`.retention_run`), users'
complaints (Art. 34, :mod:`.complaints`) and the id-free transparency report (Art. 83,
:mod:`.transparency`)."""
