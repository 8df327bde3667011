"""gradswarm's tests: ``unit/`` starts no process and opens no socket; ``integration/`` does."""
