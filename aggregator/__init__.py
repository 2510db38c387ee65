"""Aggregator: detections and session events from Kafka -> per-session sentiment in Redis."""
