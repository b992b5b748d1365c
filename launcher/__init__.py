"""`pq-run` (what `make run` starts): the whole system under supervisord, in the foreground.

It checks what would make a start fail (the system already running here, a port taken), brings
the database up to date, says which database and queue policy the programs will use, runs
supervisord in a session of its own and stops it on Ctrl-C (a second Ctrl-C stops the running
job at once), so that nothing it started outlives it, even when its output is piped through
`tee` that the same Ctrl-C has killed.
"""
