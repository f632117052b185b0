"""The REST API (DRF): one class per operation, each calling one selector or service."""
