"""What every service shares (docs/ARCHITECTURE.md): settings, logging, the Kafka loop, topic
and Redis key names, alert decoding, Redis stores, the model registry, metrics, embedded servers.
Nothing here imports a service."""
