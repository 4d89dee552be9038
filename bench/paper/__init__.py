"""Kafka-free building blocks of the paper benchmark (`ahunt bench paper`).

Datasets, metrics and plots live here so they can be unit-tested without a broker.
"""
