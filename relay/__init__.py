"""Keeps remote agents on RabbitMQ fed from a pqueue queue."""
