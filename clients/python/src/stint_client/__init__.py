"""stint_client - publish listens to stint and read its predictions and outcomes.

    from stint_client import ListenProducer, RecordConsumer, LatestBySession

    with ListenProducer("127.0.0.1:19092") as p:
        p.send("user_000001", datetime.now(timezone.utc), "Deep Dish", "Flashdance")

    with RecordConsumer("predictions", "127.0.0.1:19092", from_beginning=True,
                        idle_timeout_s=10) as c:
        for rec in c:
            print(rec)
"""
from .consumer import (DEFAULT_REGISTRY_URL, LatestBySession, RecordConsumer, decode_value,
                       registry_url_from_env)
from .errors import (BadArgument, BrokerUnreachable, DecodeError, KafkaFailure, RegistryError,
                     StintClientError, UnknownTopic)
from .producer import DEFAULT_BROKERS, ListenProducer, listen_json

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BROKERS", "DEFAULT_REGISTRY_URL", "ListenProducer", "RecordConsumer",
    "LatestBySession", "listen_json", "decode_value", "registry_url_from_env",
    "StintClientError", "BadArgument", "BrokerUnreachable", "UnknownTopic", "RegistryError",
    "KafkaFailure", "DecodeError",
]
