"""The detector service: faces, batched emotion inference, tracking, privacy masks."""
