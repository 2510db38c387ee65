"""Ingest: read cameras and video files, publish sampled JPEG frames and session events to Kafka.

One process serves many cameras: each has a reader thread (connect, sample, pace,
reconnect) feeding a bounded queue, and a worker thread (sessions, JPEG, publish).
"""
