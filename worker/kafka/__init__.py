"""Kafka wiring: the Faust app and agents, topic admin, plain clients, lag, the embedded broker."""
