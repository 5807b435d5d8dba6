"""The provider's human review of hits (DESIGN §6, Art. 10(4)(c)): :mod:`.store` keeps the items
awaiting a reviewer, applies verdicts and expires stale items."""
