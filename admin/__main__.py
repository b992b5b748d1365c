"""`python -m admin`: the same as `pq`."""

from admin.cli import main

main()
