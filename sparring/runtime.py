"""The objects a process needs, built once from settings: store and gateway."""

from __future__ import annotations

import functools

from sparring.gateway import Gateway
from sparring.livestate import Mirror, MirroredSink, MirrorSource, StreamSink
from sparring.settings import Settings, get_settings
from sparring.store import BattleSource, RecordSink, Store, open_store


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def store(self) -> Store:
        return open_store(self.settings.db_path)

    @functools.cached_property
    def gateway(self) -> Gateway:
        return Gateway(self.settings)

    @functools.cached_property
    def mirror(self) -> Mirror | None:
        if not self.settings.mirrors or not self.settings.redis_url:
            return None
        return Mirror(self.settings.redis_url, self.settings.namespace)

    @functools.cached_property
    def sink(self) -> RecordSink:
        """Where this process writes records: the file, the file + mirror, or the stream."""
        if self.settings.record_sink == "stream":
            if self.mirror is None:
                raise RuntimeError("SPARRING_RECORD_SINK=stream needs REDIS_URL")
            return StreamSink(self.mirror)
        if self.mirror is not None:
            return MirroredSink(self.store, self.mirror)
        return self.store

    @functools.cached_property
    def source(self) -> BattleSource:
        """Where workers read battle state: the file, or (stream sink) the live mirror."""
        if self.settings.record_sink == "stream" and self.mirror is not None:
            return MirrorSource(self.mirror)
        return self.store


@functools.cache
def get_runtime() -> Runtime:
    return Runtime(get_settings())


def reset() -> None:
    """Forget cached settings and objects (tests change the environment between cases)."""
    get_settings.cache_clear()
    get_runtime.cache_clear()
