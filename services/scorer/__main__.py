"""``ahunt scorer`` / ``python -m services.scorer``: run the scoring service in the foreground.

SIGTERM and SIGINT let the current batch finish, be delivered and committed, then exit.
"""

from __future__ import annotations

import logging
import signal

from services.common import metrics as metrics_module
from services.common import store
from services.common.infra import endpoints
from services.common.metrics import ScorerMetrics
from services.common.registry import Registry
from services.common.settings import KafkaSettings
from services.scorer.app import ModelWatcher, build_loop, wait_for_models
from services.scorer.model import ModelSlot
from services.scorer.settings import RedisSettings, ScorerSettings


def run(settings: ScorerSettings | None = None) -> int:
    settings = settings or ScorerSettings()
    kafka = KafkaSettings()
    metrics = ScorerMetrics()
    metrics_module.serve(settings.metrics_port)
    slot = ModelSlot()
    with endpoints(kafka.bootstrap_servers, RedisSettings().url) as ep:
        redis_client = store.connect(ep.redis)
        # Models come from the registry in Redis (any host), else from model_dir's CURRENT.
        registry = (
            Registry(redis_client, settings.registry_cache_dir) if settings.registry else None
        )
        watcher = ModelWatcher(settings, slot, metrics, registry)
        wait_for_models(slot, watcher, settings.model_wait_s or float("inf"))
        watcher.start()
        loop = build_loop(settings, kafka, ep.kafka, redis_client, metrics, slot)

        def stop(_signum: int, _frame: object) -> None:
            loop.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logging.getLogger("ahunt.scorer").info(
            "scoring %s with %s", settings.input_topics, slot.versions()
        )
        try:
            loop.run()
        finally:
            watcher.stop()
            loop.consumer.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    raise SystemExit(run())
