"""The peer queues, each driven the way its documentation shows. This package runs in
bench/.venv-peers (it imports the peers, which pqueue's own environment never installs)."""
